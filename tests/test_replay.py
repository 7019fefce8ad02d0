"""Upgrading Otto must not break runs in flight: every recorded history (``tests/histories``, recorded from
the end-to-end scenarios by ``make histories``) replays against the current workflow code, with the worker's
own workflows, data converter and interceptors. A change to workflow code that would make a recorded run
non-deterministic fails here; such a change goes behind ``workflow.patched()`` (see CONTRIBUTING.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from app.engine import replayer
from tests.e2e import HISTORIES

FIXTURES = sorted(HISTORIES.glob("*.json"))
SCENARIOS = {
    "demo",  # two dependent tasks, in flight while waiting for review
    "gate",  # the installation's queue of runs, in flight
    "pilot-skip",  # a failing task, a no-progress fix round, the gate pilot skips it and its dependent
    "retry",  # `/otto retry <guidance>` on a failing PR
    "stop",  # `/otto stop` during a long agent command
    "merge-in-order",  # a dependent approved first waits, then merges after its dependency
    "squash-stacked",  # a squash merge rebases and retargets the stacked dependent
    "budget",  # the budget runs out, is raised, and a retry continues
    "merge-on-purpose",  # an approval refused on red checks, then `/otto merge`
    "plan-approval",  # the plan waits; `/otto plan <feedback>` replans; `/otto go` runs it
    "uninstalled",  # the App uninstalled while the run waits for review: it ends, silenced
    "model-outage",  # the model answers 529 through several durable waits; the run shows it and carries on
    "pushed-head",  # a person pushes a fix to a red PR: Otto's checks on that head, then the approval merges
}


def load(path: Path) -> WorkflowHistory:
    fixture = json.loads(path.read_text())
    return WorkflowHistory.from_json(fixture["workflow_id"], fixture["history"])


def test_every_scenario_has_a_recorded_history() -> None:
    """Histories recorded by earlier versions stay (they are the runs an upgrade meets); none goes missing."""
    missing = SCENARIOS - {p.stem for p in FIXTURES}
    assert not missing, f"no recorded history for {sorted(missing)}: run `make histories`"


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
async def test_a_recorded_run_replays_on_the_current_code(path: Path) -> None:
    history = load(path)
    assert len(history.events) > 10
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.stem}: {result.replay_failure}"
