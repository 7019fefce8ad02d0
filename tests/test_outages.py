"""Outages ridden out by a real ``otto serve`` (see ``tests/outages.py``): GitHub answering 502 to everything
mid-agent and during an approval, the model answering 529 — each for longer than Otto's retries used to last
before the run failed for good. The run shows what it waits for, carries on where it was when service comes
back, and the world's own records show nothing done twice and no spend lost."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from app.domain.outages import Service
from app.domain.run import RunPhase, RunState, TaskStatus
from tests.crashes import CHECK_SLEEP, sandboxed
from tests.e2e import eventually, settled
from tests.outages import (
    HOLD,
    OLD_GITHUB_TRIES,
    Served,
    Story,
    begin,
    fill,
    past_old_budget,
    serve,
    waiting_for,
)

WAITING_LINE = re.compile(
    r"⏸️ waiting for (GitHub|the model API|disk space on the worker): (\S+).* since \d\d:\d\d UTC, retrying"
)


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """One world and one ``otto serve`` for the stories, one after another (``GROUPS``: one worker)."""
    async with serve(tmp_path_factory.mktemp("outages")) as running:
        yield running


async def assert_exact(story: Story, state: RunState) -> None:
    """One task done once: one PR, one status comment, no sha pushed twice, nothing forced, one check run
    per head, and every model call the model served counted (no more)."""
    rec = state.record("t1")
    assert rec.status == TaskStatus.PASSED, rec.note
    pushes = story.pushes()
    pushed = [(ref, new) for ref, _old, new in pushes]
    assert len(pushed) == len(set(pushed)), pushes
    assert pushes[-1][2] == rec.head_sha
    assert all(n == 1 for n in story.check_runs().values()), story.check_runs()
    assert len(story.sim.pulls(story.owner, story.name)) == 1
    created = story.sim.count_calls(
        "POST", f"/repos/{story.owner}/{story.name}/issues/{story.number}/comments", 201
    )
    assert created == 1  # the status comment, created once and edited
    served = story.served()
    assert state.usage.calls == served.calls, (state.usage, served)
    assert state.usage.input_tokens == served.input_tokens
    assert state.usage.output_tokens == served.output_tokens
    assert state.usage.cost_usd == pytest.approx(served.cost_usd)
    assert state.waiting is None
    # the comment's last edit lands a moment after the state it shows
    await eventually(lambda: "⏸️" not in story.status_bodies()[-1], within=30)


async def test_github_down_mid_agent_the_run_waits_and_pushes_the_kept_work_when_it_is_back(
    served: Served,
) -> None:
    story = await begin(served, "down-agent", hold_step=1)
    world = served.world
    try:
        await world.model.held(HOLD, within=180)  # the agent is mid-step: then GitHub goes down
        world.sim.outage()
        world.model.release(HOLD)
        waiting = await waiting_for(story, Service.GITHUB)
        assert waiting.detail == "502"
        assert WAITING_LINE.match(waiting.headline()), waiting.headline()
        failed = await past_old_budget(story)
        shown = await eventually(lambda: (story.snapshot().get("state") or {}).get("waiting"), within=60)
        assert shown["service"] == "GitHub"  # Mission Control shows the wait live
        # the task's row says what it waits for between its tries (each try shows its own stage meanwhile)
        state = await story.state(lambda s: "waiting for GitHub (502)" in s.record("t1").stage)
        assert state.phase == RunPhase.RUNNING, state.reason  # not failed: waiting
        world.sim.end_outage()

        state = await story.state(settled)
        assert state.phase == RunPhase.WAITING_REVIEW, state.reason
        await assert_exact(story, state)
        assert failed > OLD_GITHUB_TRIES
        # the agent's work was kept while GitHub was down and pushed once it was back: never asked again
        assert story.agent_steps() == [(0, 200), (1, 200), (2, 200)]
        assert len(story.pushes()) == 1
        merged = await story.approve_and_merge()
        assert merged.phase == RunPhase.DONE, merged.reason
        assert story.shouts_on_main() == 1
        assert "Traceback" not in story.otto.log()
    finally:
        served.world.sim.end_outage()  # a failed story leaves no outage behind for the next one
        served.world.model.end_outage()


async def test_the_model_overloaded_the_run_says_it_waits_and_carries_on(served: Served) -> None:
    story = await begin(served, "down-model", model_down=True)
    world = served.world
    try:
        waiting = await waiting_for(story, Service.MODEL)
        assert waiting.detail == "529 overloaded_error"
        # GitHub works: the status comment says what Otto waits for, since when, and that it carries on
        line = await eventually(
            lambda: next((b for b in story.status_bodies() if "⏸️ waiting for the model API" in b), None)
        )
        assert WAITING_LINE.search(line), line
        assert "carries on" in line
        old_budget = (4 + 1) * 2  # the SDK's 4 retries, twice (the activity's two attempts), then failed
        await eventually(
            lambda: len([q for q in world.model.requests if q.status == 529]) > old_budget, within=180
        )
        world.model.end_outage()

        state = await story.state(settled)
        assert state.phase == RunPhase.WAITING_REVIEW, state.reason
        await assert_exact(story, state)
        assert story.agent_steps() == [(0, 200), (1, 200), (2, 200)]
        assert "Traceback" not in story.otto.log()
    finally:
        served.world.sim.end_outage()  # a failed story leaves no outage behind for the next one
        served.world.model.end_outage()


async def test_a_full_disk_is_waited_out_and_no_spend_is_lost(served: Served) -> None:
    if not served.disks:
        pytest.skip(served.why_no_disks)
    story = await begin(served, "disk-full", hold_step=1)
    world = served.world
    fillers = []
    try:
        await world.model.held(HOLD, within=180)  # the agent is mid-step: then the disk fills up
        fillers = [fill(d) for d in served.disks]
        world.model.release(HOLD)
        waiting = await waiting_for(story, Service.DISK)
        assert waiting.detail == "no space left on device"
        line = await eventually(
            lambda: next((b for b in story.status_bodies() if "⏸️ waiting for disk space" in b), None)
        )
        assert WAITING_LINE.search(line), line
        for filler in fillers:
            filler.unlink()

        state = await story.state(settled)
        assert state.phase == RunPhase.WAITING_REVIEW, state.reason
        await assert_exact(story, state)  # the interrupted try's two model calls are in the run's cost
        steps = story.agent_steps()
        assert steps[:2] == [(0, 200), (1, 200)], steps  # asked before the disk filled up
        assert steps[-3:] == [(0, 200), (1, 200), (2, 200)], steps  # the agent again, from the start
        assert len(story.pushes()) == 1  # nothing was pushed before the disk filled up
        merged = await story.approve_and_merge()
        assert merged.phase == RunPhase.DONE, merged.reason
        assert "Traceback" not in story.otto.log()
    finally:
        for filler in fillers:
            filler.unlink(missing_ok=True)


async def test_github_down_mid_check_then_during_the_approval_the_run_resumes_and_merges(
    served: Served,
) -> None:
    story = await begin(served, "down-check")
    world = served.world
    try:
        await eventually(lambda: sandboxed(story.otto, CHECK_SLEEP), within=180)  # the check is running
        world.sim.outage()
        waiting = await waiting_for(story, Service.GITHUB)
        assert waiting.detail == "502"
        assert await past_old_budget(story) > OLD_GITHUB_TRIES
        world.sim.end_outage()

        state = await story.state(settled)
        assert state.phase == RunPhase.WAITING_REVIEW, state.reason
        await assert_exact(story, state)
        assert story.agent_steps() == [(0, 200), (1, 200), (2, 200)]  # the agent's pushed work was kept
        assert len(story.pushes()) == 1

        # approved while GitHub is down: the delivery is accepted, the PR can't be looked up; it keeps trying
        # past the old budget, and merges once GitHub is back
        world.sim.outage()
        before = story.failed_github_calls()
        pulls = story.sim.pulls(story.owner, story.name)
        story.sim.submit_review(story.owner, story.name, pulls[0].number, story.maintainer, "APPROVED")
        await eventually(lambda: story.failed_github_calls() > before + OLD_GITHUB_TRIES, within=120)
        assert not story.sim.pulls(story.owner, story.name)[0].merged
        world.sim.end_outage()
        merged = await story.state(lambda s: s.phase.final, within=180)
        assert merged.phase == RunPhase.DONE, merged.reason
        assert story.shouts_on_main() == 1
        merge = rf"/repos/{story.owner}/{story.name}/pulls/\d+/merge"
        assert story.sim.count_calls("PUT", merge, 200) == 1
        assert "Traceback" not in story.otto.log()
    finally:
        served.world.sim.end_outage()  # a failed story leaves no outage behind for the next one
        served.world.model.end_outage()
