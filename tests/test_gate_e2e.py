"""Active runs per installation are bounded: extra runs wait in order and say so."""

from __future__ import annotations

from collections.abc import Callable

from app.domain.run import RunPhase
from tests.e2e import Otto, Repo, demo_scenario, run_of, settled, status_comment, wait_for_state


async def test_a_second_run_waits_for_the_first_then_runs(otto: Otto, repo: Callable[..., Repo]) -> None:
    assert otto.settings.max_active_runs_per_installation == 1
    model = otto.world.model
    # both runs' tasks are "t1"; each run has its own script, the first one's agent held at its first step
    held = demo_scenario()
    held["agent"]["t1"][0] = {**held["agent"]["t1"][0], "hold": "gate-first-at-work"}
    r = repo()
    rid = otto.sim.repo(r.owner, r.name).id
    first = otto.sim.create_issue(r.owner, r.name, "First", "Add a shout mode.", r.maintainer)
    second = otto.sim.create_issue(r.owner, r.name, "Second", "Add a shout mode too.", r.maintainer)
    model.load(held, run=run_of(r, first))
    model.load(demo_scenario(), run=run_of(r, second))
    otto.sim.add_label(r.owner, r.name, first, "otto", r.maintainer)
    await model.held("gate-first-at-work")  # the first run is at work
    otto.sim.add_label(r.owner, r.name, second, "otto", r.maintainer)

    queued = await wait_for_state(otto.client, rid, second, lambda s: s.phase == RunPhase.QUEUED)
    assert "#1 in line" in queued.reason
    await status_comment(otto, r, second, "Otto: queued")
    assert model.requests_for("plan", run=run_of(r, second)) == []
    model.release("gate-first-at-work")
    first_state = await wait_for_state(otto.client, rid, first, settled)
    assert first_state.phase == RunPhase.WAITING_REVIEW
    second_state = await wait_for_state(otto.client, rid, second, settled)
    assert second_state.phase == RunPhase.WAITING_REVIEW
    # the second run planned only after the first one left the working phases
    [plan] = model.requests_for("plan", run=run_of(r, second))
    first_agent = model.requests_for("agent", "t1", run=run_of(r, first))
    assert plan.at >= max(q.at for q in first_agent)
    assert len(model.requests_for("agent", "t1", run=run_of(r, second))) == len(first_agent)
