"""Active runs per installation are bounded: extra runs wait in order and say so."""

from __future__ import annotations

from collections.abc import Callable

from app.domain.run import RunPhase
from tests.e2e import Otto, Repo, demo_scenario, settled, status_comment, wait_for_state


async def test_a_second_run_waits_for_the_first_then_runs(otto: Otto, repo: Callable[..., Repo]) -> None:
    assert otto.settings.max_active_runs_per_installation == 1
    scenario = demo_scenario()
    slow = {"delay_s": 0.3}
    scenario["agent"]["t1"] = [{**step, **slow} for step in scenario["agent"]["t1"]]
    otto.world.model.load(scenario)
    r = repo()
    rid = otto.sim.repo(r.owner, r.name).id
    first = otto.sim.create_issue(r.owner, r.name, "First", "Add a shout mode.", r.maintainer)
    second = otto.sim.create_issue(r.owner, r.name, "Second", "Add a shout mode too.", r.maintainer)
    otto.sim.add_label(r.owner, r.name, first, "otto", r.maintainer)
    await wait_for_state(otto.client, rid, first, lambda s: s.phase == RunPhase.RUNNING)
    otto.sim.add_label(r.owner, r.name, second, "otto", r.maintainer)

    queued = await wait_for_state(otto.client, rid, second, lambda s: s.phase == RunPhase.QUEUED)
    assert "#1 in line" in queued.reason
    await status_comment(otto, r, second, "Otto: queued")
    first_state = await wait_for_state(otto.client, rid, first, settled)
    assert first_state.phase == RunPhase.WAITING_REVIEW
    second_state = await wait_for_state(otto.client, rid, second, settled)
    assert second_state.phase == RunPhase.WAITING_REVIEW
    # the second run planned only after the first one left the working phases
    plans = otto.world.model.requests_for("plan")
    assert len(plans) == 2
    assert plans[1].at >= max(q.at for q in otto.world.model.requests_for("agent", "t1")[:5])
