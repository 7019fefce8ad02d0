"""Merge on approval: SHA-guarded, in dependency order, stacked PRs, review feedback and CI feedback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from app.contracts.ids import run_workflow_id
from app.dev.demo import SAMPLE_REPO
from app.dev.local import new_private_key
from app.domain.run import RunPhase, RunState, TaskStatus
from tests.e2e import (
    Otto,
    Repo,
    demo_scenario,
    eventually,
    keep_history,
    label_new_issue,
    settled,
    status_comment,
    wait_for_state,
)

EDIT = "str_replace_based_edit_tool"


def config(**settings: Any) -> dict[str, str]:
    lines = ["verify: python -m pytest -q", *(f"{k}: {v}" for k, v in settings.items())]
    return {**SAMPLE_REPO, ".github/otto.yml": "\n".join(lines) + "\n"}


async def run_to_review(otto: Otto, r: Repo, scenario: dict[str, Any]) -> tuple[int, int, RunState]:
    otto.world.model.load(scenario)
    number, rid = label_new_issue(otto.sim, r, "Add a shout mode", "With tests.")
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    return number, rid, state


def pr_of(otto: Otto, r: Repo, branch: str) -> Any:
    return next(p for p in otto.sim.pulls(r.owner, r.name) if p.head_ref == branch)


def head(otto: Otto, r: Repo, branch: str) -> str:
    sha: str = otto.sim.branches(r.owner, r.name)[branch]
    return sha


def replies(otto: Otto, r: Repo, number: int, text: str) -> list[Any]:
    return [
        c
        for c in otto.sim.comments(r.owner, r.name, number)
        if text in c.body and c.user.login == "otto[bot]"
    ]


async def merged(otto: Otto, r: Repo, number: int) -> Any:
    return await eventually(lambda: otto.sim.pull(r.owner, r.name, number).merged)


async def test_approval_merges_the_approved_head_and_the_run_concludes(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]  # t1 alone
    r = repo()
    number, rid, state = await run_to_review(otto, r, scenario)
    t1 = state.record("t1")
    pr = pr_of(otto, r, t1.branch)
    otto.sim.lazy_mergeability = True  # GitHub answers `mergeable: null` while it computes: Otto reads again
    try:
        approval = otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
        assert approval.status_code == 202
        await merged(otto, r, pr.number)
    finally:
        otto.sim.lazy_mergeability = False

    assert "def shout" in otto.sim.read_file(r.owner, r.name, "main", "greeter/core.py")
    assert not otto.sim.pull(r.owner, r.name, pr.number).draft  # marked ready for review first
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase == RunPhase.DONE)
    assert t1.branch not in otto.sim.branches(r.owner, r.name)  # merged branch deleted
    assert state.record("t1").status == TaskStatus.MERGED
    summary = await eventually(lambda: replies(otto, r, number, "run for this issue is done"))
    assert f"#{pr.number} merged" in summary[0].body
    assert "$" in summary[0].body
    assert otto.sim.issue(r.owner, r.name, number).state == "closed"
    await status_comment(otto, r, number, "🟣 merged")

    # the same approval delivered again: still one merge, no second comment
    again = otto.sim.redeliver(approval.id)
    assert again.status_code == 200
    assert otto.sim.count_calls("PUT", rf"/repos/{r.owner}/{r.name}/pulls/{pr.number}/merge") == 1
    assert len(replies(otto, r, number, "run for this issue is done")) == 1


async def test_stale_and_non_writer_approvals_merge_nothing(otto: Otto, repo: Callable[..., Repo]) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]
    r = repo()
    _, _, state = await run_to_review(otto, r, scenario)
    branch = state.record("t1").branch
    pr = pr_of(otto, r, branch)
    base_commit = otto.sim.branches(r.owner, r.name)["main"]

    otto.sim.submit_review(r.owner, r.name, pr.number, r.outsider, "APPROVED")
    await eventually(lambda: replies(otto, r, pr.number, "Only an approval by someone with write access"))
    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED", commit_id=base_commit)
    stale = await eventually(lambda: replies(otto, r, pr.number, "please approve the current head"))
    assert base_commit[:7] in stale[0].body
    assert not otto.sim.pull(r.owner, r.name, pr.number).merged
    assert otto.sim.count_calls("PUT", rf"/repos/{r.owner}/{r.name}/pulls/{pr.number}/merge") == 0


async def test_head_moved_after_approval_merges_nothing(otto: Otto, repo: Callable[..., Repo]) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]
    r = repo()
    _, _, state = await run_to_review(otto, r, scenario)
    rec = state.record("t1")
    pr = pr_of(otto, r, rec.branch)
    # a human pushes while Otto hears nothing of it (the webhook is lost), then the old head is approved
    otto.sim.set_webhook_url(otto.world.app_id, None)
    otto.sim.push_commit(r.owner, r.name, rec.branch, {"NOTES.md": "human notes\n"}, "notes", r.maintainer)
    otto.sim.set_webhook_url(otto.world.app_id, f"{otto.server.url}/webhooks")
    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED", commit_id=rec.head_sha)
    await eventually(lambda: replies(otto, r, pr.number, "moved after it was approved"))
    assert not otto.sim.pull(r.owner, r.name, pr.number).merged
    assert otto.sim.read_file(r.owner, r.name, rec.branch, "NOTES.md") == "human notes\n"  # never forced over


async def test_dependent_approved_first_waits_then_merges_in_order(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    r = repo()
    number, rid, state = await run_to_review(otto, r, demo_scenario())
    t1, t2 = state.record("t1"), state.record("t2")
    pr1, pr2 = pr_of(otto, r, t1.branch), pr_of(otto, r, t2.branch)
    assert pr2.base_ref == t1.branch  # stacked

    otto.sim.submit_review(r.owner, r.name, pr2.number, r.maintainer, "APPROVED")
    waiting = await eventually(lambda: replies(otto, r, pr2.number, "will merge after"))
    assert f"#{pr1.number}" in waiting[0].body
    assert not otto.sim.pull(r.owner, r.name, pr2.number).merged

    otto.sim.submit_review(r.owner, r.name, pr1.number, r.maintainer, "APPROVED")
    await merged(otto, r, pr2.number)
    assert otto.sim.pull(r.owner, r.name, pr1.number).merged
    assert otto.sim.pull(r.owner, r.name, pr2.number).base_ref == "main"  # retargeted before merging
    main = otto.sim.read_file(r.owner, r.name, "main", "greeter/cli.py")
    assert "--shout" in main
    assert "def shout" in otto.sim.read_file(r.owner, r.name, "main", "greeter/core.py")
    merges = [
        c for c in otto.sim.calls if c.method == "PUT" and c.path.endswith("/merge") and r.owner in c.path
    ]
    assert [c.path.rsplit("/", 2)[-2] for c in merges] == [str(pr1.number), str(pr2.number)]
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase == RunPhase.DONE)
    assert otto.sim.issue(r.owner, r.name, number).state == "closed"
    await keep_history(otto, run_workflow_id(rid, number), "merge-in-order")


@pytest.mark.parametrize("method", ["squash", "rebase"])
async def test_squash_or_rebase_merge_rebases_the_dependent(
    otto: Otto, repo: Callable[..., Repo], method: str
) -> None:
    r = repo(config(merge_method=method))
    number, rid, state = await run_to_review(otto, r, demo_scenario())
    t1, t2 = state.record("t1"), state.record("t2")
    pr1, pr2 = pr_of(otto, r, t1.branch), pr_of(otto, r, t2.branch)
    old_t2_head = head(otto, r, t2.branch)

    otto.sim.submit_review(r.owner, r.name, pr1.number, r.maintainer, "APPROVED")
    await merged(otto, r, pr1.number)

    def rebased() -> bool:
        p = otto.sim.pull(r.owner, r.name, pr2.number)
        return p.base_ref == "main" and head(otto, r, t2.branch) != old_t2_head

    await eventually(rebased)
    log = otto.sim.git_log(r.owner, r.name, t2.branch)
    main_head = otto.sim.branches(r.owner, r.name)["main"]
    assert main_head in [c.sha for c in log]  # now on top of the squashed/rebased main
    sim_repo, sim_pull = otto.sim.repo(r.owner, r.name), otto.sim.pull(r.owner, r.name, pr2.number)
    assert otto.sim.pull_stats(sim_repo, sim_pull)["mergeable"] is True
    changed = sorted(f.filename for f in otto.sim.pull_files(sim_repo, sim_pull))
    assert changed == ["greeter/cli.py", "tests/test_cli.py"]  # a clean diff: only its own change

    # the old approval would not hold for the new head; approving the new head merges it
    otto.sim.submit_review(r.owner, r.name, pr2.number, r.maintainer, "APPROVED")
    await merged(otto, r, pr2.number)
    assert "--shout" in otto.sim.read_file(r.owner, r.name, "main", "greeter/cli.py")
    await wait_for_state(otto.client, rid, number, lambda s: s.phase == RunPhase.DONE)
    await keep_history(otto, run_workflow_id(rid, number), "squash-stacked")


async def test_changes_requested_with_an_inline_comment_retries_the_task(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]
    scenario["agent"]["t1.2"] = [
        {
            "tool_use": {
                "name": EDIT,
                "input": {"command": "create", "path": "CHANGELOG.md", "file_text": "- shout()\n"},
            }
        },
        {"text": "Added a changelog entry as the review asked."},
    ]
    r = repo()
    _, _, state = await run_to_review(otto, r, scenario)
    rec = state.record("t1")
    pr = pr_of(otto, r, rec.branch)
    before = head(otto, r, rec.branch)
    otto.sim.submit_review(
        r.owner,
        r.name,
        pr.number,
        r.maintainer,
        "CHANGES_REQUESTED",
        body="Almost there.",
        comments=[{"path": "greeter/core.py", "line": 5, "body": "Mention this in a changelog."}],
    )
    reply = await eventually(lambda: replies(otto, r, pr.number, "Pushed"))
    prompt = json.dumps(otto.world.model.requests_for("agent", "t1.2")[0].body)
    assert "greeter/core.py, line 5: Mention this in a changelog." in prompt
    assert "Almost there." in prompt
    after = head(otto, r, rec.branch)
    assert after != before
    assert after[:7] in reply[0].body
    assert otto.sim.read_file(r.owner, r.name, rec.branch, "CHANGELOG.md") == "- shout()\n"


async def test_plain_review_comments_start_nothing(otto: Otto, repo: Callable[..., Repo]) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]
    r = repo()
    _, _, state = await run_to_review(otto, r, scenario)
    pr = pr_of(otto, r, state.record("t1").branch)
    calls = len(otto.world.model.requests)
    delivery = otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "COMMENTED", body="Nice.")
    assert delivery.status_code == 202
    assert "starts nothing" in delivery.response_body
    assert len(otto.world.model.requests) == calls


async def test_ci_failure_gets_one_fix_round_then_the_budget_message(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]
    scenario["agent"]["t1.2"] = [
        {"tool_use": {"name": EDIT, "input": {"command": "create", "path": "lint.cfg", "file_text": "x\n"}}},
        {"text": "Fixed what CI reported."},
    ]
    r = repo(config(max_ci_fix_rounds=1))
    _, rid, state = await run_to_review(otto, r, scenario)
    rec = state.record("t1")
    pr = pr_of(otto, r, rec.branch)
    ci_app = 777_000 + pr.number
    otto.sim.register_app(ci_app, f"ci{ci_app}", new_private_key()[1])
    otto.sim.install_app(ci_app, r.owner)
    failing = {"title": "lint failed", "summary": "E501 line too long in greeter/core.py", "text": "1 error"}
    first = head(otto, r, rec.branch)
    otto.sim.post_check_run(ci_app, r.owner, r.name, first, "lint", conclusion="failure", output=failing)
    await eventually(lambda: head(otto, r, rec.branch) != first)
    prompt = json.dumps(otto.world.model.requests_for("agent", "t1.2")[0].body)
    assert "E501 line too long in greeter/core.py" in prompt
    assert "CI fix round 1 of 1" in prompt

    second = head(otto, r, rec.branch)
    await eventually(lambda: replies(otto, r, pr.number, "Pushed"))
    otto.sim.post_check_run(ci_app, r.owner, r.name, second, "lint", conclusion="failure", output=failing)
    budget = await eventually(lambda: replies(otto, r, pr.number, "CI fix budget"))
    assert second[:7] in budget[0].body
    assert otto.world.model.requests_for("agent", "t1.3") == []
    state = await wait_for_state(otto.client, rid, state.issue_number, settled)
    assert state.record("t1").ci_fix_rounds == 1


async def test_closing_a_pr_abandons_the_task_and_blocks_dependents(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    r = repo()
    number, rid, state = await run_to_review(otto, r, demo_scenario())
    pr1 = pr_of(otto, r, state.record("t1").branch)
    otto.sim.close_pull_request(r.owner, r.name, pr1.number, r.maintainer)
    state = await wait_for_state(
        otto.client, rid, number, lambda s: s.record("t1").status == TaskStatus.ABANDONED
    )
    assert "blocked" in state.record("t2").note
    body = (await status_comment(otto, r, number, "🚫 PR closed")).body
    assert "blocked: depends on t1" in body


async def test_review_feedback_off_ignores_change_requests(otto: Otto, repo: Callable[..., Repo]) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]
    r = repo(config(review_feedback="false"))
    _, rid, state = await run_to_review(otto, r, scenario)
    pr = pr_of(otto, r, state.record("t1").branch)
    calls = len(otto.world.model.requests)
    delivery = otto.sim.submit_review(
        r.owner, r.name, pr.number, r.maintainer, "CHANGES_REQUESTED", body="No."
    )
    assert delivery.status_code == 202
    # the delivery reached the run (so the run saw it and chose to ignore it)
    assert await otto.client.get_workflow_handle(f"delivery/{delivery.id}").result() == "signalled review"
    state = await wait_for_state(otto.client, rid, state.issue_number, settled)
    assert state.record("t1").attempts == 1
    assert len(otto.world.model.requests) == calls


async def test_a_human_push_is_recorded_and_needs_a_fresh_approval(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    scenario = demo_scenario()
    scenario["plan"][0]["json"]["tasks"] = scenario["plan"][0]["json"]["tasks"][:1]
    r = repo()
    number, rid, state = await run_to_review(otto, r, scenario)
    rec = state.record("t1")
    pr = pr_of(otto, r, rec.branch)
    new = otto.sim.push_commit(r.owner, r.name, rec.branch, {"NOTES.md": "x\n"}, "notes", r.maintainer)
    state = await wait_for_state(otto.client, rid, number, lambda s: s.record("t1").head_sha == new)
    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED", commit_id=rec.head_sha)
    await eventually(lambda: replies(otto, r, pr.number, "please approve the current head"))
    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    await merged(otto, r, pr.number)
    assert otto.sim.read_file(r.owner, r.name, "main", "NOTES.md") == "x\n"
