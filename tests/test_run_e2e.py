"""The walking skeleton end to end: webhook → Temporal → model (scripted) → git → draft PRs (simulator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.contracts.ids import gate_workflow_id, run_workflow_id
from app.domain.run import RunPhase, TaskStatus
from app.intake import sign
from tests.e2e import (
    Otto,
    Repo,
    demo_scenario,
    eventually,
    keep_history,
    label_new_issue,
    run_of,
    settled,
    status_comment,
    wait_for_state,
)
from tests.test_failures_e2e import create, scenario, task

ISSUE = ("Add a shout mode", "A `shout(name)` function and a `--shout` flag, with tests.")


def open_issue(otto: Otto, r: Repo) -> int:
    number: int = otto.sim.create_issue(r.owner, r.name, *ISSUE, r.maintainer)
    return number


def repo_id(otto: Otto, r: Repo) -> int:
    rid: int = otto.sim.repo(r.owner, r.name).id
    return rid


async def test_labeled_issue_becomes_plan_branches_and_draft_prs(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    scenario = demo_scenario()
    # the agent also tries to read outside its worktree: refused, reported back to it as a tool error
    scenario["agent"]["t1"].insert(
        0,
        {
            "tool_use": {
                "name": "str_replace_based_edit_tool",
                "input": {"command": "view", "path": "../../etc/passwd"},
            }
        },
    )
    otto.world.model.load(scenario)
    r = repo()
    number = open_issue(otto, r)

    delivery = otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    assert delivery.status_code == 202

    state = await wait_for_state(otto.client, repo_id(otto, r), number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert [t.task.id for t in state.tasks] == ["t1", "t2"]
    assert all(t.status == TaskStatus.PASSED for t in state.tasks), [t.note for t in state.tasks]

    sim = otto.sim
    # 👀 on the issue, by the App
    assert any(x.content == "eyes" for x in sim.reactions(r.owner, r.name, number))

    # two branches whose files contain the agent's edits; t2 was built on t1
    branches = sim.branches(r.owner, r.name)
    b1, b2 = state.tasks[0].branch, state.tasks[1].branch
    assert b1 == f"otto/{number}/t1-add-shout-to-greeter-core"
    assert b1 in branches
    assert b2 in branches
    assert "def shout(name: str) -> str:" in sim.read_file(r.owner, r.name, b1, "greeter/core.py")
    assert "test_shout_is_the_greeting_in_capitals" in sim.read_file(
        r.owner, r.name, b1, "tests/test_shout.py"
    )
    assert "--shout" in sim.read_file(r.owner, r.name, b2, "greeter/cli.py")
    assert "def shout" in sim.read_file(r.owner, r.name, b2, "greeter/core.py")
    assert sim.read_file(r.owner, r.name, "main", "tests/test_shout.py") is None  # base untouched

    # commits authored by the bot user (its own id, not the App id)
    bot = sim.user("otto[bot]")
    head = sim.git_log(r.owner, r.name, b1)[0]
    assert head.author_name == "otto[bot]"
    assert head.author_email == f"{bot.id}+otto[bot]@users.noreply.github.com"
    assert bot.id != otto.world.app_id

    # two draft PRs with the expected bodies
    pulls = sorted(sim.pulls(r.owner, r.name), key=lambda p: p.number)
    assert [p.head_ref for p in pulls] == [b1, b2]
    # t2 depends on t1 alone: its PR is stacked on t1's branch, so its diff is only its own change
    assert [p.base_ref for p in pulls] == ["main", b1]
    assert "`greeter/core.py`" not in pulls[1].body
    for pr, rec in zip(pulls, state.tasks, strict=True):
        assert pr.draft
        assert pr.state == "open"
        assert f"Part of #{number}" in pr.body
        assert rec.task.intent in pr.body
        assert all(a in pr.body for a in rec.task.acceptance)
        assert "✅ passed" in pr.body
        assert "<details>" in pr.body
        assert "passed" in pr.body.split("<details>")[1]
    assert "`greeter/core.py`" in pulls[0].body
    assert "`tests/test_shout.py`" in pulls[0].body
    assert "`greeter/cli.py`" in pulls[1].body
    # the otto/verify check run is green on each head
    for pr in pulls:
        runs = [c for c in sim.check_runs(r.owner, r.name, branches[pr.head_ref]) if c.name == "otto/verify"]
        assert len(runs) == 1
        assert runs[0].conclusion == "success"

    # exactly one status comment, edited in place (never re-posted), ending with both PRs and the cost
    status = await status_comment(otto, r, number, "waiting for your review")
    assert len([c for c in sim.comments(r.owner, r.name, number) if c.user.login == "otto[bot]"]) == 1
    assert len(status.edits) >= 4
    assert any("planning" in e.lower() for e in status.edits)
    assert f"[#{pulls[0].number}]" in status.body
    assert f"[#{pulls[1].number}]" in status.body
    assert "waiting for your review" in status.body
    assert "tokens" in status.body
    assert "$" in status.body
    assert sim.count_calls("POST", f"/repos/{r.owner}/{r.name}/issues/{number}/comments") == 1

    # the path escape reached the model as an error, and nothing outside was read
    escape_reply = otto.world.model.requests_for("agent", "t1")[1].body
    assert escape_reply is not None
    result = escape_reply["messages"][-1]["content"][0]
    assert result["type"] == "tool_result"
    assert result["is_error"] is True
    assert "root:" not in str(result["content"])

    # no task failed, so the gate pilot was never called
    assert otto.world.model.requests_for("pilot") == []

    # untrusted text reached the model only as quoted data
    plan_request = otto.world.model.requests_for("plan")[-1].body
    assert plan_request is not None
    assert '<untrusted source="issue body">' in plan_request["messages"][0]["content"]
    await keep_history(otto, run_workflow_id(repo_id(otto, r), number), "demo")
    await keep_history(otto, gate_workflow_id(state.repo.installation_id), "gate")


async def test_wrong_or_missing_signature_is_401_and_starts_nothing(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    r = repo()
    number = open_issue(otto, r)
    good = otto.sim.add_label(r.owner, r.name, number, "bug", r.maintainer)  # a real, signed payload
    url = f"{otto.server.url}/webhooks"
    headers = {k: v for k, v in good.headers.items() if k.lower() != "x-hub-signature-256"}
    headers["X-GitHub-Event"] = "issues"
    body = good.body.replace(b'"bug"', b'"otto"')
    async with httpx.AsyncClient() as http:
        wrong = await http.post(
            url, content=body, headers={**headers, "X-Hub-Signature-256": sign("nope", body)}
        )
        missing = await http.post(url, content=body, headers=headers)
        sha1 = await http.post(url, content=body, headers={**headers, "X-Hub-Signature": "sha1=00"})
    assert (wrong.status_code, missing.status_code, sha1.status_code) == (401, 401, 401)
    assert otto.sim.comments(r.owner, r.name, number) == []
    from temporalio.service import RPCError

    with pytest.raises(RPCError):
        await otto.client.get_workflow_handle(f"delivery/{good.id}").describe()


async def test_bad_input_gets_clear_answers(otto: Otto) -> None:
    url = f"{otto.server.url}/webhooks"
    secret = otto.settings.webhook_secret.get_secret_value()

    def headers(event: str, body: bytes) -> dict[str, str]:
        return {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": "d-bad",
            "X-Hub-Signature-256": sign(secret, body),
        }

    async with httpx.AsyncClient() as http:
        not_json = await http.post(url, content=b"{nope", headers=headers("issues", b"{nope"))
        wrong_shape = b'{"action": "labeled", "issue": 5}'
        malformed = await http.post(url, content=wrong_shape, headers=headers("issues", wrong_shape))
        unknown = await http.post(url, content=b"{}", headers=headers("star", b"{}"))
        big = b"x" * (otto.settings.max_webhook_bytes + 1)
        too_large = await http.post(url, content=big, headers=headers("issues", big))
    assert not_json.status_code == 400
    assert malformed.status_code == 400
    assert unknown.status_code == 202
    assert "ignored" in unknown.json()["status"]
    assert too_large.status_code == 413


async def test_redelivery_is_recognised_and_starts_one_run(otto: Otto, repo: Callable[..., Repo]) -> None:
    otto.world.model.load(demo_scenario())
    r = repo()
    number = open_issue(otto, r)
    first = otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    again = otto.sim.redeliver(first.id)
    assert first.status_code == 202
    assert again.status_code == 200
    assert "duplicate" in again.response_body
    state = await wait_for_state(otto.client, repo_id(otto, r), number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW
    assert len(otto.world.model.requests_for("classify")) == 1
    assert len(otto.sim.pulls(r.owner, r.name)) == 2


async def test_labeling_again_while_running_changes_nothing(otto: Otto, repo: Callable[..., Repo]) -> None:
    otto.world.model.load(demo_scenario())
    r = repo()
    number = open_issue(otto, r)
    otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    await wait_for_state(otto.client, repo_id(otto, r), number, settled)
    # the maintainer removes the label and adds it again (GitHub sends no event for a label already there)
    otto.sim.remove_label(otto.sim.repo(r.owner, r.name), number, "otto", otto.sim.user(r.maintainer))
    second = otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    assert second.status_code == 202

    def notice() -> Any:
        bodies = [c.body for c in otto.sim.comments(r.owner, r.name, number) if c.user.login == "otto[bot]"]
        return len(bodies) == 1 and "already running" in bodies[0]

    await eventually(notice)
    assert len(otto.sim.pulls(r.owner, r.name)) == 2


async def test_non_writer_gets_a_refusal_and_no_run(otto: Otto, repo: Callable[..., Repo]) -> None:
    otto.world.model.load(demo_scenario())
    before = len(otto.world.model.requests)
    r = repo()
    number = open_issue(otto, r)
    delivery = otto.sim.add_label(r.owner, r.name, number, "otto", r.outsider)
    assert delivery.status_code == 202

    def refusal() -> Any:
        return [
            c for c in otto.sim.comments(r.owner, r.name, number) if "only people with write access" in c.body
        ]

    comments = await eventually(refusal)
    assert len(comments) == 1
    assert f"@{r.outsider}" in comments[0].body
    assert otto.sim.reactions(r.owner, r.name, number) == []
    assert len(otto.world.model.requests) == before
    assert otto.sim.pulls(r.owner, r.name) == []


async def test_bot_labels_start_nothing(otto: Otto, repo: Callable[..., Repo]) -> None:
    r = repo()
    number = open_issue(otto, r)
    delivery = otto.sim.add_label(r.owner, r.name, number, "otto", "otto[bot]")
    assert delivery.status_code == 202
    assert "bot" in delivery.response_body
    assert otto.sim.comments(r.owner, r.name, number) == []


async def test_invalid_plan_twice_fails_the_run_with_a_readable_message(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    scenario = demo_scenario()
    scenario["plan"] = [
        {"text": "Here is my plan: do it all at once."},
        {"json": {"tasks": [{"id": "t1", "title": "x", "intent": "y", "depends_on": ["t9"]}]}},
    ]
    otto.world.model.load(scenario)
    r = repo()
    number = open_issue(otto, r)
    otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    state = await wait_for_state(otto.client, repo_id(otto, r), number, settled)
    assert state.phase == RunPhase.FAILED
    assert "invalid plan twice" in state.reason
    assert "unknown task(s): t9" in state.reason
    retry = otto.world.model.requests_for("plan")[-1].body
    assert retry is not None
    assert "That plan is invalid" in str(retry["messages"][-1]["content"])
    body = (await status_comment(otto, r, number, "run failed")).body
    assert "invalid plan twice" in body
    assert otto.sim.pulls(r.owner, r.name) == []


async def test_not_actionable_issue_asks_questions(otto: Otto, repo: Callable[..., Repo]) -> None:
    scenario = demo_scenario()
    scenario["classify"] = [
        {
            "json": {
                "actionable": False,
                "summary": "Too vague.",
                "questions": ["Which command should change?"],
            }
        }
    ]
    otto.world.model.load(scenario)
    r = repo()
    number = open_issue(otto, r)
    otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    state = await wait_for_state(otto.client, repo_id(otto, r), number, settled)
    assert state.phase == RunPhase.NEEDS_INFO
    body = (await status_comment(otto, r, number, "Otto needs more information")).body
    assert "- Which command should change?" in body
    assert otto.world.model.requests_for("plan") == []


async def test_a_model_outage_is_waited_out_and_said(otto: Otto, repo: Callable[..., Repo]) -> None:
    """529 eight times in a row: more than the SDK's retries in both of the activity's tries (6) that used to
    fail the run. It waits instead, says so in the status comment, and carries on."""
    scenario = demo_scenario()
    overloaded = {"status": 529, "retry_after_ms": 1}
    scenario["classify"] = [{"errors": [overloaded] * 8, "json": {"actionable": True}}]
    otto.world.model.load(scenario)
    r = repo()
    number = open_issue(otto, r)
    otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    waiting = await wait_for_state(otto.client, repo_id(otto, r), number, lambda s: s.waiting is not None)
    assert waiting.waiting is not None
    assert (waiting.waiting.service, waiting.waiting.detail) == ("the model API", "529 overloaded_error")
    said = await status_comment(otto, r, number, "⏸️ waiting for the model API: 529 overloaded_error since")
    assert "retrying" in said.body
    state = await wait_for_state(otto.client, repo_id(otto, r), number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert state.waiting is None
    assert len([q for q in otto.world.model.requests_for("classify") if q.status == 529]) == 8
    assert state.usage.calls == len(otto.world.model.served())
    await keep_history(otto, run_workflow_id(repo_id(otto, r), number), "model-outage")


async def test_two_runs_at_once_with_the_same_task_id_each_follow_their_own_script(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    """Both runs' only task is "t1"; keyed by run, each gets its own script (with one script per task id
    for the whole world, both would have written the same file)."""
    model = otto.world.model
    model.load({})  # no default script: a request not tied to its run fails loudly
    runs: dict[str, tuple[Repo, int, int]] = {}
    for name in ("left", "right"):
        agent = {"t1": [create(f"{name}.py", f"SIDE = {name!r}\n"), {"text": f"Added {name}.", "hold": name}]}
        r = repo()
        number, rid = label_new_issue(otto.sim, r, script=(model, scenario([task("t1", name)], agent)))
        runs[name] = (r, number, rid)
    await model.held("left")
    await model.held("right")  # both runs are in the middle of their t1 at once
    model.release("left")
    model.release("right")
    for name, other in (("left", "right"), ("right", "left")):
        r, number, rid = runs[name]
        state = await wait_for_state(otto.client, rid, number, settled)
        assert state.phase == RunPhase.WAITING_REVIEW, state.reason
        t1 = state.record("t1")
        assert (t1.task.title, t1.status) == (name, TaskStatus.PASSED)
        assert otto.sim.read_file(r.owner, r.name, t1.branch, f"{name}.py") == f"SIDE = {name!r}\n"
        assert otto.sim.read_file(r.owner, r.name, t1.branch, f"{other}.py") is None
        asked = model.requests_for("agent", "t1", run=run_of(r, number))
        assert [(q.step, q.status) for q in asked] == [(0, 200), (1, 200)]
    assert len(model.requests_for("agent", "t1")) == 4
    assert [q for q in model.requests if q.status != 200] == []
