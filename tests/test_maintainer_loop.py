"""The maintainer's loop, end to end through the simulator and the scripted model: approvals that merge only
what is green (and answer when they don't), `/otto merge` on purpose, a stop that stops, readable logs, every
verify round's log kept, and plan approval (`/otto go`, `/otto plan <feedback>`)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.artifacts import attempt_prefix, store_from_settings
from app.contracts.ids import run_workflow_id
from app.dev.demo import SAMPLE_REPO
from app.dev.local import new_private_key
from app.domain.run import RunPhase, RunState, TaskStatus
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
from tests.test_failures_e2e import create, pr_of, run, task

ESC = "\x1b"


def scenario(
    tasks: list[dict[str, Any]], agent: dict[str, list[dict[str, Any]]], **more: Any
) -> dict[str, Any]:
    return {
        "classify": [{"json": {"actionable": True, "summary": "Add b."}}],
        "plan": [{"json": {"summary": "Add b.", "tasks": tasks}}],
        "agent": agent,
        **more,
    }


def config(**settings: Any) -> dict[str, str]:
    lines = ["verify: python -m pytest -q", *(f"{k}: {v}" for k, v in settings.items())]
    return {**SAMPLE_REPO, ".github/otto.yml": "\n".join(lines) + "\n"}


FAILING_TEST = "def test_b():\n    assert 'b' == 'B', 'b is not ready yet'\n"
ONE_RED_TASK = scenario(
    [task("t1", "Add b")], {"t1": [create("tests/test_b.py", FAILING_TEST), {"text": "Added b's test."}]}
)


def bot_comments(otto: Otto, r: Repo, number: int, containing: str) -> list[Any]:
    return [
        c
        for c in otto.sim.comments(r.owner, r.name, number)
        if c.user.login == "otto[bot]" and containing in c.body
    ]


async def review_state(otto: Otto, r: Repo, sc: dict[str, Any]) -> tuple[int, int, RunState]:
    otto.world.model.load(sc)
    number, rid = label_new_issue(otto.sim, r, "Add b", "With a test.")
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    return number, rid, state


# --- merge gating ------------------------------------------------------------------------------------
async def test_approving_a_red_pr_merges_nothing_and_says_why_then_otto_merge_merges_it_on_purpose(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    r = repo(config(max_fix_rounds=0))
    number, rid, state = await review_state(otto, r, ONE_RED_TASK)
    t1 = state.record("t1")
    assert t1.status == TaskStatus.FAILED
    pr = pr_of(otto, r, t1.branch)
    assert "Approve to merge" not in pr.body
    status = (await status_comment(otto, r, number, "**Pull requests:**")).body
    assert "**Pull requests:** 1 failing (1 test)." in status

    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    [reply] = await eventually(lambda: bot_comments(otto, r, pr.number, "nothing was merged"))
    assert f"@{r.maintainer} approved, but nothing was merged because the checks are red" in reply.body
    assert f"Otto's checks: 1 failing test ([log]({otto.server.url}/runs/" in reply.body
    assert "`/otto retry <guidance>`" in reply.body
    assert not otto.sim.pull(r.owner, r.name, pr.number).merged

    # a reader can't merge it on purpose; a writer can, and it is said on the PR and in the status
    refused = otto.sim.comment(r.owner, r.name, pr.number, "/otto merge", r.outsider)
    assert refused.status_code == 202
    await eventually(lambda: bot_comments(otto, r, pr.number, f"Sorry @{r.outsider}, only people with write"))
    assert not otto.sim.pull(r.owner, r.name, pr.number).merged
    otto.sim.comment(r.owner, r.name, pr.number, "/otto merge", r.maintainer)
    await eventually(lambda: otto.sim.pull(r.owner, r.name, pr.number).merged)
    [said] = await eventually(lambda: bot_comments(otto, r, pr.number, "Merged on purpose"))
    assert said.body.endswith(
        f"Merged on purpose by @{r.maintainer} with `/otto merge`, although 1 failing test "
        "(Otto's own checks were red)."
    )
    merge_commit = otto.sim.git_log(r.owner, r.name, "main")[0]
    assert "Merged on purpose with `/otto merge` although Otto's checks failed." in merge_commit.message
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final)
    assert state.phase == RunPhase.DONE
    body = (await status_comment(otto, r, number, "on purpose")).body
    assert (
        f"🟣 merged — merged by otto[bot] on purpose at @{r.maintainer}'s `/otto merge` (checks were red)"
        in body
    )
    await keep_history(otto, run_workflow_id(rid, number), "merge-on-purpose")


async def test_approving_a_skipped_task_answers_and_merges_nothing(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    decision = {
        "tasks": [
            {"task_id": "t2", "analysis": "b's test can't pass yet.", "action": "skip", "strategy": ""}
        ],
        "summary": "Skip t2 and t3.",
    }
    agents = {
        "t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}],
        "t2": [create("tests/test_b.py", FAILING_TEST), {"text": "Added b's test."}],
        "t3": [create("c.py", "C = 3\n"), {"text": "Added c.py."}],
    }
    plan = [task("t1", "Add a"), task("t2", "Add b"), task("t3", "Use b in c", "t2")]
    r = repo(config(max_fix_rounds=0))
    number, _, state = await review_state(otto, r, scenario(plan, agents, pilot=[{"json": decision}]))
    t2 = state.record("t2")
    assert t2.status == TaskStatus.SKIPPED
    pr = pr_of(otto, r, t2.branch)
    [analysis] = await eventually(lambda: bot_comments(otto, r, pr.number, "Gate pilot"))
    assert "this pull request stays open as a failing draft" in analysis.body
    status = (await status_comment(otto, r, number, "**Pull requests:**")).body
    assert "**Pull requests:** 1 ready for review, 2 skipped." in status

    delivery = otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    assert delivery.status_code == 202
    [reply] = await eventually(lambda: bot_comments(otto, r, pr.number, "nothing was merged"))
    assert f"@{r.maintainer} approved, but the gate pilot skipped task `t2` (1 failing test)" in reply.body
    assert "stays open as a failing draft" in reply.body
    assert not otto.sim.pull(r.owner, r.name, pr.number).merged


async def test_a_failing_required_check_of_another_app_blocks_the_merge_and_is_named(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    sc = scenario([task("t1", "Add a")], {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}]})
    r = repo(config(max_ci_fix_rounds=0))
    otto.sim.require_checks(r.owner, r.name, ["lint"])
    number, rid, state = await review_state(otto, r, sc)
    rec = state.record("t1")
    pr = pr_of(otto, r, rec.branch)
    ci_app = 888_000 + pr.number
    otto.sim.register_app(ci_app, f"lint{ci_app}", new_private_key()[1])
    otto.sim.install_app(ci_app, r.owner)
    otto.sim.post_check_run(ci_app, r.owner, r.name, rec.head_sha, "lint", conclusion="failure")

    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    [reply] = await eventually(lambda: bot_comments(otto, r, pr.number, "checks are red"))
    assert "- ❌ `lint` fails" in reply.body
    assert not otto.sim.pull(r.owner, r.name, pr.number).merged

    # green now: the next approval merges
    otto.sim.post_check_run(ci_app, r.owner, r.name, rec.head_sha, "lint", conclusion="success")
    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    await eventually(lambda: otto.sim.pull(r.owner, r.name, pr.number).merged)
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final)
    assert state.record("t1").note == f"merged by otto[bot] on @{r.maintainer}'s approval"


# --- a stop that stops ---------------------------------------------------------------------------------
def stop_and_time(otto: Otto, r: Repo, number: int) -> float:
    started = time.monotonic()
    delivery = otto.sim.comment(r.owner, r.name, number, "/otto stop", r.maintainer)
    assert delivery.status_code == 202
    return started


async def stopped_within_bound(
    otto: Otto, r: Repo, number: int, rid: int, started: float
) -> tuple[RunState, float, float]:
    stopping = await status_comment(otto, r, number, f"stopping (asked by @{r.maintainer})")
    seen_stopping = time.monotonic() - started
    assert stopping is not None
    # a synchronisation bound, not a measurement: stop latency is a figure to measure, not a timed test
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final, within=30)
    latency = time.monotonic() - started
    print(f"stop: 'stopping' after {seen_stopping:.2f}s, stopped after {latency:.2f}s")
    assert state.phase == RunPhase.CANCELLED
    final = await status_comment(otto, r, number, f"⏹️ Otto: stopped by @{r.maintainer}")
    assert "⚠️" not in final.body  # a stop asked for is no error, for the run or its tasks
    return state, seen_stopping, latency


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [rec for rec in caplog.records if rec.exc_info and rec.levelno >= logging.WARNING]
    assert noisy == [], [rec.getMessage() for rec in noisy]


async def test_a_stop_during_a_long_agent_command_kills_it_and_counts_every_model_call(
    otto: Otto, repo: Callable[..., Repo], caplog: pytest.LogCaptureFixture
) -> None:
    agents = {
        "t1": [create("a.py", "A = 1\n"), run("sleep 120"), {"text": "never reached"}],
        "t2": [create("b.py", "B = 2\n"), {"text": "Added b."}],
    }
    otto.world.model.load(scenario([task("t1", "Add a"), task("t2", "Add b", "t1")], agents))
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    await eventually(lambda: len(otto.world.model.requests_for("agent", "t1")) == 2)
    await eventually(lambda: _sandbox_sleeping("sleep 120"), within=20)
    caplog.clear()
    started = stop_and_time(otto, r, number)
    state, _, _ = await stopped_within_bound(otto, r, number, rid, started)

    # the command was killed, not left behind (it leaves /proc a moment after bwrap reports its exit)
    with contextlib.suppress(AssertionError):
        await eventually(lambda: not _sandbox_sleeping("sleep 120"), within=20)
    assert not _sandbox_sleeping("sleep 120"), _who_runs("sleep 120")
    t1 = state.record("t1")
    assert t1.status == TaskStatus.ERROR
    assert t1.note == "stopped before it finished; nothing more is pushed"
    assert [h.outcome for h in t1.history] == ["stopped"]
    t2 = state.record("t2")  # never started: said so, not left "pending"
    assert (t2.status, t2.note) == (
        TaskStatus.SKIPPED,
        "not started — the run was stopped",
    )
    # every model call the run made is in its cost (classify, plan, the agent's two)
    assert state.usage.calls == len(otto.world.model.requests) == 4
    assert t1.usage.calls == 2
    assert [p for p in otto.sim.pushes if p.owner == r.owner] == []  # nothing was pushed
    no_tracebacks(caplog)
    await keep_history(otto, run_workflow_id(rid, number), "stop")


async def test_a_stop_during_verification_kills_the_checks_and_pushes_nothing_more(
    otto: Otto, repo: Callable[..., Repo], caplog: pytest.LogCaptureFixture
) -> None:
    otto.world.model.load(
        scenario([task("t1", "Add a")], {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}]})
    )
    r = repo({**SAMPLE_REPO, ".github/otto.yml": "verify: sleep 121 && python -m pytest -q\n"})
    number, rid = label_new_issue(otto.sim, r)
    await eventually(lambda: _sandbox_sleeping("sleep 121"), within=30)
    pushed = [p for p in otto.sim.pushes if p.owner == r.owner]
    assert len(pushed) == 1  # the agent's work, pushed before verification
    caplog.clear()
    started = stop_and_time(otto, r, number)
    state, _, _ = await stopped_within_bound(otto, r, number, rid, started)

    await eventually(lambda: not _sandbox_sleeping("sleep 121"), within=10)
    assert state.record("t1").note == "stopped before it finished; nothing more is pushed"
    assert [p for p in otto.sim.pushes if p.owner == r.owner] == pushed  # work already pushed stays
    assert otto.sim.pulls(r.owner, r.name) == []
    assert state.usage.calls == len(otto.world.model.requests) == 4
    # the final status names where that work in progress is (no PR points at it)
    t1 = state.record("t1")
    assert t1.wip_sha is not None
    assert t1.wip_sha == otto.sim.branches(r.owner, r.name)[t1.branch]
    where = f"its work in progress is on `{t1.branch}` ({t1.wip_sha[:7]}, unchecked, no PR)"
    await status_comment(otto, r, number, where)
    no_tracebacks(caplog)


async def test_closing_the_issue_stops_the_run(otto: Otto, repo: Callable[..., Repo]) -> None:
    agents = {"t1": [create("a.py", "A = 1\n"), run("sleep 122"), {"text": "never reached"}]}
    otto.world.model.load(scenario([task("t1", "Add a")], agents))
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    await eventually(lambda: _sandbox_sleeping("sleep 122"), within=20)
    started = time.monotonic()
    otto.sim.close_issue(r.owner, r.name, number, r.maintainer)
    state, _, _ = await stopped_within_bound(otto, r, number, rid, started)
    assert state.stop_requested_by == r.maintainer
    await eventually(lambda: not _sandbox_sleeping("sleep 122"), within=10)


def _who_runs(command: str) -> str:
    """For a failure message: each process running ``command``, its ancestors and its cgroup."""
    lines = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if command.encode() not in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                continue
            chain, pid = [], entry.name
            while pid not in ("0", "1"):
                status = dict(
                    line.split(":\t", 1)
                    for line in (Path("/proc") / pid / "status").read_text().splitlines()
                    if ":\t" in line
                )
                cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
                chain.append(f"{pid} [{status.get('State', '?')}] {cmd}")
                pid = status.get("PPid", "0").strip()
            cgroup = (entry / "cgroup").read_text().strip()
            lines.append(" <- ".join(chain) + f" (cgroup {cgroup})")
    return "still running after the stop: " + "; ".join(lines)


def _sandbox_sleeping(command: str) -> bool:
    """A sandboxed process running ``command`` exists (seen from the host's /proc: one with bwrap among its
    ancestors, so that the same command run by anything else on the machine is not mistaken for it)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:  # it exited meanwhile
                continue
            if command.encode() in b" ".join(argv) and _under_bwrap(entry.name):
                return True
    return False


def _under_bwrap(pid: str) -> bool:
    seen = 0
    while pid not in ("0", "1") and seen < 64:
        seen += 1
        try:
            if b"bwrap" in (Path("/proc") / pid / "cmdline").read_bytes():
                return True
            status = (Path("/proc") / pid / "status").read_text()
        except OSError:
            return False
        pid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "0")
    return False


# --- readable logs -------------------------------------------------------------------------------------
COLOUR_REPO = {
    **SAMPLE_REPO,
    "pytest.ini": "[pytest]\naddopts = --color=yes\n",
    ".github/otto.yml": "verify: python -m pytest -q\nmax_fix_rounds: 3\n",
}


def failing_tests(n: int) -> str:
    return "".join(f"def test_{i}():\n    assert {i} < {3 - n}, 'not yet'\n\n" for i in range(3))


async def test_colour_codes_never_reach_the_pr_the_check_run_or_the_model_and_every_round_keeps_its_log(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    agent = [
        run("printf '\\033[1;31mred\\033[0m \\033]0;title\\007done\\r\\n'; python -m pytest -q"),
        create("tests/test_n.py", failing_tests(3)),
        {"text": "Added three tests."},
    ]
    for fixed in (2, 1, 0):  # each fix round fixes one test: progress every round, three rounds
        agent += [create("tests/test_n.py", failing_tests(fixed)), {"text": f"{fixed} left."}]
    r = repo(COLOUR_REPO)
    _, _, state = await review_state(otto, r, scenario([task("t1", "Add n")], {"t1": agent}))
    rec = state.record("t1")
    assert rec.status == TaskStatus.PASSED
    assert rec.fix_rounds == 3

    requests = otto.world.model.requests_for("agent", "t1")
    assert ESC not in json.dumps([q.body for q in requests], ensure_ascii=False)  # none, anywhere
    bodies = [q.body or {} for q in requests]
    tool_result = json.dumps(bodies[1]["messages"][-1], ensure_ascii=False)
    assert "red done" in tool_result
    fix_prompt = json.dumps(bodies[3]["messages"][-1], ensure_ascii=False)
    assert "3 failed" in fix_prompt

    pr = pr_of(otto, r, rec.branch)
    assert ESC not in pr.body
    assert "passed" in pr.body
    [check] = [c for c in otto.sim.check_runs(r.owner, r.name, rec.head_sha) if c.name == "otto/verify"]
    assert ESC not in json.dumps(check.output, ensure_ascii=False)

    store = store_from_settings(otto.settings)
    prefix = attempt_prefix(state.run_id, "t1", 1)
    logs = [store.get_text(f"{prefix}/verify.{n}.log") or "" for n in range(4)]
    assert ["3 failed" in logs[0], "2 failed" in logs[1], "1 failed" in logs[2]] == [True, True, True]
    assert "failed" not in logs[3]
    assert "passed" in logs[3]
    assert all(ESC not in x for x in logs)


# --- plan approval -------------------------------------------------------------------------------------
async def test_plan_approval_waits_holding_no_slot_replans_with_feedback_and_runs_on_go(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    first = {"summary": "Add b.", "tasks": [task("t1", "Add b")]}
    second = {"summary": "Add b and its test.", "tasks": [task("t1", "Add b with a test")]}
    sc = scenario([], {"t1": [create("b.py", "B = 2\n"), {"text": "Added b."}]}, plan=[{"json": first}])
    model = otto.world.model
    r = repo(config(plan_approval="true"))
    number, rid = label_new_issue(otto.sim, r, "Add b", "Please.", script=(model, sc))
    ref = run_of(r, number)
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase == RunPhase.PLAN_REVIEW)
    await status_comment(otto, r, number, "the plan is ready for your approval")
    assert model.requests_for("agent", run=ref) == []

    # waiting holds no slot: a run on another repository of the installation (bound: one run at a time)
    # goes ahead meanwhile, on a script of its own (its task is a "t1" too)
    otto.sim.create_repo(r.owner, "second", SAMPLE_REPO)
    otto.sim.set_permission(r.owner, "second", r.maintainer, "write")
    other = Repo(r.owner, "second", r.maintainer, r.outsider)
    other_sc = scenario([task("t1", "Add c")], {"t1": [create("c.py", "C = 3\n"), {"text": "Added c."}]})
    other_number, other_rid = label_new_issue(otto.sim, other, "Add c", "Quick.", script=(model, other_sc))
    other_state = await wait_for_state(otto.client, other_rid, other_number, settled)
    assert other_state.phase == RunPhase.WAITING_REVIEW, other_state.reason
    assert other_state.record("t1").task.title == "Add c"
    assert len(model.requests_for("agent", "t1", run=run_of(other, other_number))) == 2
    model.load({**sc, "plan": [{"json": second}]}, run=ref)  # the planner's next answer (a new conversation)

    # a reader can't approve or change the plan
    otto.sim.comment(r.owner, r.name, number, "/otto go", r.outsider)
    await eventually(lambda: bot_comments(otto, r, number, f"Sorry @{r.outsider}"))
    assert (await wait_for_state(otto.client, rid, number, lambda s: True)).phase == RunPhase.PLAN_REVIEW

    otto.sim.comment(r.owner, r.name, number, "/otto plan Also add a test for b.", r.maintainer)
    state = await wait_for_state(
        otto.client,
        rid,
        number,
        lambda s: s.phase == RunPhase.PLAN_REVIEW and s.plan_summary == second["summary"],
    )
    [_plan, replan] = model.requests_for("plan", run=ref)
    prompt = json.dumps(replan.body)
    assert "Also add a test for b." in prompt
    assert "Add b" in prompt  # the old plan goes to the planner
    assert model.requests_for("agent", run=ref) == []

    otto.sim.comment(r.owner, r.name, number, "/otto go", r.maintainer)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert state.record("t1").task.title == "Add b with a test"
    assert state.record("t1").status == TaskStatus.PASSED
    await keep_history(otto, run_workflow_id(rid, number), "plan-approval")
