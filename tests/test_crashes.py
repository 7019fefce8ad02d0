"""A real ``otto serve`` SIGKILLed mid-agent and mid-check, and its Temporal server alone SIGKILLed mid-agent
(see ``tests/crashes.py``): restarted on the same data dir, the run completes, and the simulator's and the
scripted model's own records show nothing done twice and no spend lost. Timings: ``python -m bench crash``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.dev.local import LocalWorld
from app.domain.run import RunPhase, TaskStatus
from tests.crashes import CrashReport, Where, crash_and_recover

# a dead Otto's task is handed on quickly: short heartbeat and sticky-queue timeouts
FAST = {"heartbeat_timeout_s": 5.0, "sticky_queue_timeout_s": 2.0}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[LocalWorld]:
    w = LocalWorld.start(tmp_path / "world")
    yield w
    w.stop()


def assert_once(report: CrashReport) -> None:
    """What every crash must leave: the task done once, nothing pushed, opened or posted twice."""
    state = report.state
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    rec = state.record("t1")
    assert rec.status == TaskStatus.PASSED, rec.note
    pushed = [(ref, new) for ref, _old, new in report.pushes]
    assert len(pushed) == len(set(pushed)), pushed  # no sha pushed twice
    assert report.forced == []  # nothing forced
    assert report.pushes[-1][2] == rec.head_sha
    assert report.check_runs[rec.head_sha or ""] == 1  # one check run on the head
    assert all(n <= 1 for n in report.check_runs.values()), report.check_runs
    assert report.pulls == 1  # one PR for the task
    assert report.status_comments == 1  # one status comment, edited in place
    # spend never lost: every call the model served is in the run's cost, and nothing more
    assert state.usage.calls == report.served.calls, (state.usage, report.served)
    assert state.usage.input_tokens == report.served.input_tokens
    assert state.usage.output_tokens == report.served.output_tokens
    assert state.usage.cache_read_input_tokens == report.served.cache_read_input_tokens
    assert state.usage.cost_usd == pytest.approx(report.served.cost_usd)
    # approved and merged: the change is on main exactly once
    assert report.merged.phase == RunPhase.DONE, report.merged.reason
    assert report.shouts_on_main == 1


@pytest.mark.parametrize("where", ["agent", "engine"])
async def test_killed_mid_agent_the_attempt_starts_over_and_the_run_completes(
    world: LocalWorld, tmp_path: Path, where: Where
) -> None:
    report = await crash_and_recover(world, tmp_path, where, **FAST)
    assert report.exit_code == (1 if where == "engine" else -9)
    assert_once(report)
    # the held step was never answered to the dead attempt (499: its client was gone); the retry asked again
    # from the start
    steps = report.agent_requests
    assert [step for step, _ in steps] == [0, 1, 0, 1, 2], steps
    assert steps[1][1] == 499, steps
    assert [status for _, status in steps[:1] + steps[2:]] == [200] * 4, steps
    assert report.pushes[0][1] is None  # the task branch was first pushed by the retry


async def test_killed_mid_check_the_attempt_resumes_after_the_agent(
    world: LocalWorld, tmp_path: Path
) -> None:
    report = await crash_and_recover(world, tmp_path, "verify", **FAST)
    assert report.exit_code == -9
    assert report.leftovers == {}, "the killed Otto's check outlived it"
    assert_once(report)
    assert report.agent_requests == [(0, 200), (1, 200), (2, 200)]  # not asked again: resumed after it
    assert len(report.pushes) == 1  # the agent's work, pushed once before the check; nothing after it
