"""Helpers for end-to-end tests: scenarios, the run's state, the simulator's side effects."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from app.contracts.ids import run_workflow_id
from app.dev.fake_llm import FakeLLM
from app.dev.local import LocalWorld
from app.domain.run import RunPhase, RunState
from app.settings import Settings
from app.webserver import RunningWeb

DEMO_SCENARIO = Path(__file__).parents[1] / "app" / "dev" / "demo_data" / "scenario.yaml"


def demo_scenario() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEMO_SCENARIO.read_text()))


async def run_state(client: Client, repo_id: int, number: int, labeling: int = 1) -> RunState:
    from app.workflows.run import RunWorkflow

    handle = client.get_workflow_handle_for(RunWorkflow.run, run_workflow_id(repo_id, number, labeling))
    return await handle.query(RunWorkflow.status)


async def wait_for_state(
    client: Client,
    repo_id: int,
    number: int,
    until: Callable[[RunState], bool],
    within: float = 90.0,
    labeling: int = 1,
) -> RunState:
    """The run of the issue's ``labeling``-th labeling once ``until`` holds of its state."""
    deadline = time.monotonic() + within
    state: RunState | None = None
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            state = await run_state(client, repo_id, number, labeling)
            if until(state):
                return state
        except Exception as e:  # not started yet
            error = e
        await asyncio.sleep(0.25)  # a query is a round trip through Temporal to the worker: not too often
    raise AssertionError(f"run never reached the expected state; last: {state!r} {error!r}")


async def no_activity_pending(client: Client, repo_id: int, number: int, within: float = 60.0) -> None:
    """Wait until the run has no activity scheduled or running (e.g. the status publish that follows a
    phase change): the point after which anything written to GitHub was caused by what the test does next."""
    handle = client.get_workflow_handle(run_workflow_id(repo_id, number))
    deadline = time.monotonic() + within
    while (await handle.describe()).raw_description.pending_activities:
        if time.monotonic() > deadline:
            raise AssertionError(f"the run still has activities pending after {within}s")
        await asyncio.sleep(0.05)


def settled(state: RunState) -> bool:
    return state.phase == RunPhase.WAITING_REVIEW or state.phase.final


@dataclass
class Otto:
    world: LocalWorld
    settings: Settings
    client: Client
    server: RunningWeb

    @property
    def sim(self) -> Any:
        return self.world.sim


@dataclass
class Repo:
    owner: str
    name: str
    maintainer: str
    outsider: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


async def eventually(check: Callable[[], Any], within: float = 60.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (the run happens in the worker, asynchronously)."""
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # e.g. a query before the workflow exists
            last_error = e
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s (last error: {last_error!r})")


async def status_comment(otto: Otto, r: Repo, number: int, containing: str) -> Any:
    """The bot's comment once it says ``containing`` (the final edit lands just after the state changes)."""

    def check() -> Any:
        mine = [c for c in otto.sim.comments(r.owner, r.name, number) if c.user.login == "otto[bot]"]
        return next((c for c in mine if containing in c.body), None)

    return await eventually(check)


def run_of(r: Repo, number: int) -> str:
    """How the scripted model keys the run of issue ``number`` (its prompts' ``otto-run:``)."""
    return f"{r.full_name}#{number}"


def label_new_issue(
    sim: Any,
    r: Repo,
    title: str = "Add a, b and c",
    body: str = "Please add them.",
    *,
    script: tuple[FakeLLM, Mapping[str, Any]] | None = None,
) -> tuple[int, int]:
    """A maintainer opens an issue and labels it `otto`; returns (issue number, repository id).
    ``script``: (the model, a scenario) the issue's run gets as its own, loaded before the label."""
    number: int = sim.create_issue(r.owner, r.name, title, body, r.maintainer)
    if script is not None:
        model, scenario = script
        model.load(scenario, run=run_of(r, number))
    sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
    repo_id: int = sim.repo(r.owner, r.name).id
    return number, repo_id


HISTORIES = Path(__file__).parent / "histories"


async def keep_history(otto: Otto, workflow_id: str, name: str) -> None:
    """`make histories` (``OTTO_RECORD_HISTORIES=1``): keep this workflow's history as a replay fixture,
    ``tests/histories/<name>.json`` (``tests/test_replay.py`` replays each against the current code)."""
    if os.environ.get("OTTO_RECORD_HISTORIES") != "1":
        return
    history = await otto.client.get_workflow_handle(workflow_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    fixture = {"workflow_id": workflow_id, "history": json.loads(history.to_json())}
    (HISTORIES / f"{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
