"""GitHub's published example payloads (npm @octokit/webhooks-examples) parse and route without error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.contracts.messages import DeliveryRequest, InstallationChange, StartRun
from app.intake import Router
from app.settings import Settings
from handlers import ROUTES

EXAMPLES = Path(__file__).parents[1] / ".cache" / "octokit" / "webhooks-examples.json"


def _examples() -> list[tuple[str, int, dict[str, Any]]]:
    if not EXAMPLES.exists():
        raise FileNotFoundError(f"{EXAMPLES} is missing: `make test` fetches it from the npm registry")
    out = []
    for entry in json.loads(EXAMPLES.read_text()):
        if ROUTES.handles_event(entry["name"]):
            for i, example in enumerate(entry["examples"]):
                out.append((entry["name"], i, example))
    return out


CASES = _examples()


class RecordingHandoff:
    def __init__(self) -> None:
        self.started: list[tuple[str, DeliveryRequest]] = []

    async def submit(self, delivery_id: str, request: DeliveryRequest) -> bool:
        self.started.append((delivery_id, request))
        return True


def test_every_handled_event_has_examples() -> None:
    assert {name for name, _, _ in CASES} == ROUTES.events
    assert len(CASES) > 50


@pytest.mark.parametrize(("event", "index", "payload"), CASES, ids=[f"{e}-{i}" for e, i, _ in CASES])
async def test_example_parses_and_routes(event: str, index: int, payload: dict[str, Any]) -> None:
    handoff = RecordingHandoff()
    router = Router(Settings(_env_file=None, trigger_label="otto"), handoff, ROUTES)
    outcome = await router.dispatch(event, f"example-{index}", json.dumps(payload).encode())
    assert outcome.status in (200, 202), outcome.message
    if event == "issues":
        assert handoff.started == []  # none of GitHub's examples carries the `otto` label
    for _, request in handoff.started:  # what reaches the engine is typed and complete
        if isinstance(request, InstallationChange):
            assert request.installation_id > 0
            assert request.account
        else:
            assert request.repo.installation_id > 0
        assert request.delivery_id == f"example-{index}"


async def test_a_labeled_example_without_installation_starts_nothing() -> None:
    labeled = next(p for e, _, p in CASES if e == "issues" and p["action"] == "labeled")
    handoff = RecordingHandoff()
    router = Router(Settings(_env_file=None, trigger_label=labeled["label"]["name"]), handoff, ROUTES)
    human = dict(labeled, sender={**labeled["sender"], "type": "User"})
    human.pop("installation", None)
    outcome = await router.dispatch("issues", "d-2", json.dumps(human).encode())
    assert outcome.status == 202
    assert handoff.started == []


async def test_an_example_with_the_trigger_label_asks_for_a_run() -> None:
    labeled = next(p for e, _, p in CASES if e == "issues" and p["action"] == "labeled")
    handoff = RecordingHandoff()
    router = Router(Settings(_env_file=None, trigger_label=labeled["label"]["name"]), handoff, ROUTES)
    human = dict(
        labeled, installation={"id": 77}, sender={**labeled["sender"], "type": "User", "login": "mona"}
    )
    outcome = await router.dispatch("issues", "d-1", json.dumps(human).encode())
    assert outcome.status == 202
    [(delivery, request)] = handoff.started
    assert delivery == "d-1"
    assert isinstance(request, StartRun)
    assert request.issue_number == labeled["issue"]["number"]
    assert request.repo.repo_id == labeled["repository"]["id"]
    assert request.repo.installation_id == 77
    assert request.trigger.sender == "mona"
