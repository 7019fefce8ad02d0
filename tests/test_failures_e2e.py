"""When tasks fail: fix rounds, the gate pilot at batch boundaries, pilot analyses on PRs, /otto commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from app.contracts.ids import run_workflow_id
from app.dev.demo import SAMPLE_REPO
from app.domain.run import RunPhase, TaskStatus
from tests.e2e import (
    Otto,
    Repo,
    eventually,
    keep_history,
    label_new_issue,
    run_of,
    settled,
    status_comment,
    wait_for_state,
)

EDIT = "str_replace_based_edit_tool"
FAILING_TEST = "def test_b():\n    assert 'b' == 'B', 'b is not ready yet'\n"
PASSING_TEST = "def test_b():\n    assert 'b'.upper() == 'B'\n"


def create(path: str, text: str) -> dict[str, Any]:
    return {"tool_use": {"name": EDIT, "input": {"command": "create", "path": path, "file_text": text}}}


def run(command: str) -> dict[str, Any]:
    return {"tool_use": {"name": "run_command", "input": {"command": command}}}


def task(tid: str, title: str, *deps: str) -> dict[str, Any]:
    return {
        "id": tid,
        "title": title,
        "intent": f"{title}.",
        "acceptance": ["tests pass"],
        "depends_on": list(deps),
    }


def scenario(
    plan_tasks: list[dict[str, Any]], agent: dict[str, list[dict[str, Any]]], **more: Any
) -> dict[str, Any]:
    return {
        "classify": [{"json": {"actionable": True, "summary": "Do A, B and C."}}],
        "plan": [{"json": {"summary": "A and B, then C on top of B.", "tasks": plan_tasks}}],
        "agent": agent,
        **more,
    }


# t2 writes a failing test and never fixes it: its fix round changes nothing, so rounds stop there
FAILING_PLAN = [task("t1", "Add module a"), task("t2", "Add module b"), task("t3", "Use b in c", "t2")]
FAILING_AGENTS: dict[str, list[dict[str, Any]]] = {
    "t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}],
    "t2": [
        create("tests/test_b.py", FAILING_TEST),
        {"text": "Added b's test."},
        {"text": "I could not fix it."},
    ],
    "t3": [create("c.py", "C = 3\n"), {"text": "Added c.py."}],
}


def pr_of(otto: Otto, r: Repo, branch: str) -> Any:
    return next(p for p in otto.sim.pulls(r.owner, r.name) if p.head_ref == branch)


def head(otto: Otto, r: Repo, branch: str) -> str:
    sha: str = otto.sim.branches(r.owner, r.name)[branch]
    return sha


def verify_run(otto: Otto, r: Repo, sha: str) -> Any:
    runs = [c for c in otto.sim.check_runs(r.owner, r.name, sha) if c.name == "otto/verify"]
    assert len(runs) == 1
    return runs[0]


async def test_failing_task_gets_a_no_progress_fix_round_then_the_pilot_skips_it_and_its_dependent(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    decision = {
        "tasks": [
            {
                "task_id": "t2",
                "analysis": "test_b asserts an unimplemented behaviour.",
                "action": "skip",
                "strategy": "",
            }
        ],
        "summary": "t2 can't pass yet; skip it and t3.",
    }
    otto.world.model.load(scenario(FAILING_PLAN, FAILING_AGENTS, pilot=[{"json": decision}]))
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)

    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    t1, t2, t3 = (state.record(t) for t in ("t1", "t2", "t3"))
    assert t1.status == TaskStatus.PASSED
    assert t2.status == TaskStatus.SKIPPED
    assert t2.fix_rounds == 1
    assert t3.status == TaskStatus.SKIPPED
    assert "t2" in t3.note
    assert t3.pr_number is None

    # one fix round was fed the failure; it made no progress, so no second round
    fix_prompts = [q for q in otto.world.model.requests_for("agent", "t2") if q.step == 2]
    assert len(fix_prompts) == 1
    assert "fix round 1 of 3" in json.dumps(fix_prompts[0].body)
    assert len(otto.world.model.requests_for("agent", "t2")) == 3

    # exactly one pilot call, with t2's verify-log tail and the plan in it
    [pilot] = otto.world.model.requests_for("pilot")
    prompt = json.dumps(pilot.body)
    assert "b is not ready yet" in prompt
    assert "1 failed" in prompt
    assert "Use b in c" in prompt
    assert "depends on: t2" in prompt
    assert "Pending tasks: t3" in prompt
    assert "tools" not in (pilot.body or {})

    # t2's PR is still pushed, marked failed, with a failing check run carrying the log
    pr2 = pr_of(otto, r, t2.branch)
    assert pr2.draft
    assert "❌ failed" in pr2.body
    check = verify_run(otto, r, head(otto, r, t2.branch))
    assert check.conclusion == "failure"
    assert "b is not ready yet" in json.dumps(check.output)

    # the analysis is a comment on t2's PR; the issue's status comment got the one-line summary
    analyses = [c for c in otto.sim.comments(r.owner, r.name, pr2.number) if "Gate pilot" in c.body]
    assert len(analyses) == 1
    assert "test_b asserts an unimplemented behaviour." in analyses[0].body
    assert "skip" in analyses[0].body
    body = (await status_comment(otto, r, number, "waiting for your review")).body
    assert "Gate pilot: t2 can't pass yet; skip it and t3." in body

    # artifacts: plan, transcripts, verify logs, summaries, learnings
    run_dir = otto.settings.artifacts_dir / state.run_id.replace("/", "-")
    assert [t["id"] for t in json.loads((run_dir / "plan.json").read_text())["tasks"]] == ["t1", "t2", "t3"]
    assert "- t1 " in (run_dir / "context.md").read_text()
    assert (run_dir / "t2" / "attempt-1" / "transcript.jsonl").exists()
    attempt_dir = run_dir / "t2" / "attempt-1"
    assert "b is not ready yet" in (attempt_dir / "verify.0.log").read_text()  # every round's log is kept
    assert "b is not ready yet" in (attempt_dir / "verify.1.log").read_text()
    assert (run_dir / "t1" / "attempt-1" / "summary.md").read_text().startswith("Added a.py.")
    assert any(line.startswith("- t1 ") for line in state.learnings)
    await keep_history(otto, run_workflow_id(rid, number), "pilot-skip")


async def test_pilot_retry_with_a_strategy_succeeds_and_the_dependent_runs(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    decision = {
        "tasks": [
            {
                "task_id": "t2",
                "analysis": "The test expects upper case.",
                "action": "retry",
                "strategy": "Make test_b compare upper-cased text.",
            }
        ],
        "route_context": {"t3": "b's test compares upper-cased text"},
        "summary": "retry t2 with an upper-case fix",
    }
    agents = dict(FAILING_AGENTS)
    agents["t2.2"] = [create("tests/test_b.py", PASSING_TEST), {"text": "Fixed test_b."}]
    otto.world.model.load(scenario(FAILING_PLAN, agents, pilot=[{"json": decision}]))
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)

    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert [state.record(t).status for t in ("t1", "t2", "t3")] == [TaskStatus.PASSED] * 3
    assert state.record("t2").attempts == 2
    retry_prompt = json.dumps(otto.world.model.requests_for("agent", "t2.2")[0].body)
    assert "Make test_b compare upper-cased text." in retry_prompt
    assert "attempt 2" in retry_prompt
    t3_prompt = json.dumps(otto.world.model.requests_for("agent", "t3")[0].body)
    assert "b's test compares upper-cased text" in t3_prompt  # the pilot's route_context reached t3
    assert verify_run(otto, r, head(otto, r, state.record("t2").branch)).conclusion == "success"
    assert len(otto.world.model.requests_for("pilot")) == 1


async def test_pilot_invalid_json_falls_back_to_replanning_and_says_so(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    new_plan = {"summary": "Do c without b.", "tasks": [task("t4", "Add c without b", "t1")]}
    agents = dict(FAILING_AGENTS)
    agents["t4"] = [create("c.py", "C = 4\n"), {"text": "Added c.py without b."}]
    otto.world.model.load(
        scenario(
            FAILING_PLAN,
            agents,
            pilot=[{"text": "I think we should retry, maybe?"}],
            replan=[{"json": new_plan}],
        )
    )
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)

    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert state.record("t4").status == TaskStatus.PASSED
    assert state.record("t2").status == TaskStatus.SKIPPED
    assert state.record("t3").status == TaskStatus.SKIPPED
    assert state.record("t3").note == "replaced by a new plan"
    body = (await status_comment(otto, r, number, "waiting for your review")).body
    assert "replanning instead" in body
    assert "Replanned" in body
    assert "t4 Add c without b" in body
    [replan] = otto.world.model.requests_for("replan")
    assert "b is not ready yet" in json.dumps(replan.body)


async def test_no_failure_means_no_pilot_call(otto: Otto, repo: Callable[..., Repo]) -> None:
    agents = {k: v for k, v in FAILING_AGENTS.items() if k != "t2"}
    agents["t2"] = [create("b.py", "B = 2\n"), {"text": "Added b.py."}]
    otto.world.model.load(scenario(FAILING_PLAN, agents))
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW
    assert otto.world.model.requests_for("pilot") == []
    assert otto.world.model.requests_for("replan") == []


SINGLE = [task("t1", "Add module b")]
SINGLE_AGENTS: dict[str, list[dict[str, Any]]] = {
    "t1": [create("tests/test_b.py", FAILING_TEST), {"text": "Added b's test."}],
    "t1.2": [create("tests/test_b.py", PASSING_TEST), {"text": "Used the helper; test_b passes."}],
}
NO_FIX_ROUNDS = {**SAMPLE_REPO, ".github/otto.yml": "verify: python -m pytest -q\nmax_fix_rounds: 0\n"}


async def test_human_retry_with_guidance_adds_a_commit_and_turns_the_check_green(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    otto.world.model.load(scenario(SINGLE, SINGLE_AGENTS))
    r = repo(NO_FIX_ROUNDS)
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    rec = state.record("t1")
    assert rec.status == TaskStatus.FAILED
    assert rec.fix_rounds == 0
    assert otto.world.model.requests_for("pilot") == []  # nothing remains after the last batch
    first_head = head(otto, r, rec.branch)
    assert verify_run(otto, r, first_head).conclusion == "failure"
    pr = pr_of(otto, r, rec.branch)

    delivery = otto.sim.comment(
        r.owner, r.name, pr.number, "/otto retry use the helper in utils.py", r.maintainer
    )
    assert delivery.status_code == 202
    comment_id = delivery.payload["comment"]["id"]

    def thumbs_up() -> bool:
        reactions = otto.sim.reactions(r.owner, r.name, comment_id=comment_id)
        return {x.content for x in reactions} >= {"eyes", "+1"}

    await eventually(thumbs_up)
    state = await wait_for_state(
        otto.client, rid, number, lambda s: s.record("t1").status == TaskStatus.PASSED
    )
    assert state.record("t1").attempts == 2
    prompt = json.dumps(otto.world.model.requests_for("agent", "t1.2")[0].body)
    assert "use the helper in utils.py" in prompt
    assert "@" + r.maintainer in prompt
    new_head = head(otto, r, rec.branch)
    log = otto.sim.git_log(r.owner, r.name, rec.branch)
    assert new_head != first_head
    assert first_head in [c.sha for c in log[1:]]
    assert verify_run(otto, r, new_head).conclusion == "success"
    assert "✅ passed" in pr_of(otto, r, rec.branch).body
    assert len(otto.sim.pulls(r.owner, r.name)) == 1
    await status_comment(otto, r, number, "✅ verified")
    await keep_history(otto, run_workflow_id(rid, number), "retry")


async def test_retry_by_a_non_writer_is_refused_and_runs_nothing(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    otto.world.model.load(scenario(SINGLE, SINGLE_AGENTS))
    r = repo(NO_FIX_ROUNDS)
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    pr = pr_of(otto, r, state.record("t1").branch)
    before = len(otto.world.model.requests)
    otto.sim.comment(r.owner, r.name, pr.number, "/otto retry please", r.outsider)

    def refusal() -> Any:
        return [
            c
            for c in otto.sim.comments(r.owner, r.name, pr.number)
            if "only people with write access" in c.body
        ]

    await eventually(refusal)
    assert len(otto.world.model.requests) == before
    assert (await wait_for_state(otto.client, rid, number, settled)).record("t1").attempts == 1


async def test_help_status_and_unknown_commands(otto: Otto, repo: Callable[..., Repo]) -> None:
    otto.world.model.load(scenario(SINGLE, SINGLE_AGENTS))
    r = repo(NO_FIX_ROUNDS)
    number, rid = label_new_issue(otto.sim, r)
    await wait_for_state(otto.client, rid, number, settled)
    otto.sim.comment(r.owner, r.name, number, "/otto help", r.maintainer)
    otto.sim.comment(r.owner, r.name, number, "/otto dance", r.maintainer)
    status_delivery = otto.sim.comment(r.owner, r.name, number, "/otto status", r.maintainer)

    def replies() -> Any:
        bodies = [c.body for c in otto.sim.comments(r.owner, r.name, number)]
        helps = [b for b in bodies if "`/otto retry [guidance]`" in b]
        return len(helps) == 2 and any("isn't a command Otto knows" in b for b in helps)

    await eventually(replies)
    eyes = lambda: any(  # noqa: E731
        x.content == "eyes"
        for x in otto.sim.reactions(r.owner, r.name, comment_id=status_delivery.payload["comment"]["id"])
    )
    await eventually(eyes)


async def test_pilot_off_goes_straight_to_replanning(otto: Otto, repo: Callable[..., Repo]) -> None:
    new_plan = {"summary": "Do c without b.", "tasks": [task("t4", "Add c without b", "t1")]}
    agents = dict(FAILING_AGENTS)
    agents["t4"] = [create("c.py", "C = 4\n"), {"text": "Added c.py without b."}]
    otto.world.model.load(scenario(FAILING_PLAN, agents, replan=[{"json": new_plan}]))
    files = {
        **SAMPLE_REPO,
        ".github/otto.yml": "verify: python -m pytest -q\npilot: false\nmax_fix_rounds: 0\n",
    }
    r = repo(files)
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert otto.world.model.requests_for("pilot") == []
    [replan] = otto.world.model.requests_for("replan")
    assert "pilot is off" in json.dumps(replan.body)
    assert state.record("t4").status == TaskStatus.PASSED
    assert state.record("t2").fix_rounds == 0


async def test_retry_of_a_task_that_is_running_starts_nothing(otto: Otto, repo: Callable[..., Repo]) -> None:
    agents = {
        "t1": [create("a.py", "A = 1\n"), {"text": "done"}],
        "t1.2": [{**create("b.py", "B = 1\n"), "hold": "retry-at-work"}, {"text": "second attempt"}],
    }
    r = repo()
    number, rid = label_new_issue(otto.sim, r, script=(otto.world.model, scenario([task("t1", "A")], agents)))
    # the PR doesn't exist yet while t1 runs; a retry names the task through its PR, so use a second run:
    state = await wait_for_state(otto.client, rid, number, settled)
    pr = pr_of(otto, r, state.record("t1").branch)
    otto.sim.comment(r.owner, r.name, pr.number, "/otto retry", r.maintainer)
    await otto.world.model.held("retry-at-work")  # the retry's agent is at work
    await wait_for_state(otto.client, rid, number, lambda s: s.record("t1").status == TaskStatus.RUNNING)
    otto.sim.comment(r.owner, r.name, pr.number, "/otto retry again", r.maintainer)
    await eventually(
        lambda: [c for c in otto.sim.comments(r.owner, r.name, pr.number) if "already running" in c.body]
    )
    otto.world.model.release("retry-at-work")
    state = await wait_for_state(
        otto.client, rid, number, lambda s: s.record("t1").status == TaskStatus.PASSED
    )
    assert state.record("t1").attempts == 2
    assert otto.world.model.requests_for("agent", "t1.3", run=run_of(r, number)) == []


async def test_budget_fails_closed_then_a_raised_budget_and_retry_continue(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    pricey = {"usage": {"input_tokens": 1000, "output_tokens": 30_000}}  # $0.453 a call at Sonnet prices
    agents: dict[str, list[dict[str, Any]]] = {
        "t1": [
            {**create("a.py", "A = 1\n"), **pricey},
            {
                **create("tests/test_a.py", "from a import A\n\n\ndef test_a():\n    assert A == 1\n"),
                **pricey,
            },
            {"text": "never reached: the budget stops the agent first"},
        ],
        "t1.2": [{"text": "Finished a.py and its test."}],
        "t2": [{"text": "never reached"}],
    }
    otto.world.model.load(scenario([task("t1", "Add a"), task("t2", "Use a", "t1")], agents))
    r = repo({**SAMPLE_REPO, ".github/otto.yml": "verify: python -m pytest -q\nbudget_usd: 1\n"})
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)

    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert "budget of $1.00 is spent" in state.reason
    assert "raise `budget_usd`" in state.reason
    assert state.usage.cost_usd <= 1.0
    assert len(otto.world.model.requests_for("agent", "t1")) == 2  # the third call was never made
    t1, t2 = state.record("t1"), state.record("t2")
    assert "budget is spent" in t1.note
    assert t1.pr_number is not None
    assert t2.status == TaskStatus.SKIPPED
    assert "budget" in t2.note
    assert otto.sim.read_file(r.owner, r.name, t1.branch, "tests/test_a.py")  # work so far is pushed
    assert "budget is spent" in json.dumps(verify_run(otto, r, head(otto, r, t1.branch)).output)
    await status_comment(otto, r, number, "of $1.00")

    # a retry while the budget is still spent is refused with the way forward
    pr = pr_of(otto, r, t1.branch)
    otto.sim.comment(r.owner, r.name, pr.number, "/otto retry", r.maintainer)
    await eventually(lambda: [c for c in otto.sim.comments(r.owner, r.name, pr.number) if "budget" in c.body])
    assert otto.world.model.requests_for("agent", "t1.2") == []

    # raising the budget in the repository and retrying continues the task
    otto.sim.push_commit(
        r.owner,
        r.name,
        "main",
        {".github/otto.yml": "verify: python -m pytest -q\nbudget_usd: 5\n"},
        "raise Otto's budget",
        r.maintainer,
    )
    otto.sim.comment(r.owner, r.name, pr.number, "/otto retry", r.maintainer)
    state = await wait_for_state(
        otto.client,
        rid,
        number,
        lambda s: s.record("t1").attempts == 2 and s.record("t1").status != TaskStatus.RUNNING,
    )
    assert state.budget_usd == 5.0
    assert len(otto.world.model.requests_for("agent", "t1.2")) == 1
    await keep_history(otto, run_workflow_id(rid, number), "budget")
