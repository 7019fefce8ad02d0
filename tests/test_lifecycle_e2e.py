"""The App's installation changing under Otto, end to end through the simulator's webhooks: uninstalled or
suspended while a run waits for review, a repository taken out of the installation, a delivery for an
installation GitHub no longer knows, and a late delivery that must not stop anything."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest

from app.artifacts import snapshot_key, store_from_settings
from app.contracts.ids import delivery_workflow_id, run_workflow_id
from app.dev.demo import SAMPLE_REPO
from app.dev.simulator import render
from app.domain.run import RunPhase, RunState, TaskStatus
from app.domain.snapshot import RunSnapshot
from app.intake import sign
from tests.e2e import (
    Otto,
    Repo,
    eventually,
    keep_history,
    label_new_issue,
    no_activity_pending,
    settled,
    status_comment,
    wait_for_state,
)
from tests.test_failures_e2e import SINGLE, create, scenario

ONE_TASK = scenario(SINGLE, {"t1": [create("b.py", "B = 2\n"), {"text": "Added b.py."}]})
WRITES = ("POST", "PATCH", "PUT", "DELETE")


def mark(otto: Otto) -> tuple[int, int]:
    """Where the simulator's records are now (API calls, pushes)."""
    return len(otto.sim.calls), len(otto.sim.pushes)


def writes_to(otto: Otto, owner: str, since: tuple[int, int]) -> list[str]:
    """The API writes and git pushes to ``owner``'s repositories after ``since`` (see :func:`mark`)."""
    prefix = f"/repos/{owner}/"
    calls = [c for c in otto.sim.calls[since[0] :] if c.method in WRITES and c.path.startswith(prefix)]
    pushes = [p for p in otto.sim.pushes[since[1] :] if p.owner == owner]
    return [f"{c.method} {c.path}" for c in calls] + [f"push {p.repo}" for p in pushes]


def token_requests(otto: Otto, installation_id: int, since: tuple[int, int]) -> list[int]:
    """Statuses of the App's token requests for ``installation_id`` after ``since``."""
    path = f"/app/installations/{installation_id}/access_tokens"
    return [c.status for c in otto.sim.calls[since[0] :] if c.method == "POST" and c.path == path]


def snapshot(otto: Otto, run_id: str) -> RunSnapshot | None:
    raw = store_from_settings(otto.settings).get_text(snapshot_key(run_id))
    return RunSnapshot.model_validate_json(raw) if raw else None


async def waiting_run(otto: Otto, r: Repo) -> tuple[int, int, RunState]:
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    await status_comment(otto, r, number, "ready for review")
    await no_activity_pending(otto.client, rid, number)  # its last status publish has landed
    return number, rid, state


async def delivery_result(otto: Otto, delivery_id: str) -> str:
    result: str = await otto.client.get_workflow_handle(delivery_workflow_id(delivery_id)).result()
    return result


@pytest.mark.parametrize("change", ["deleted", "suspend"])
async def test_uninstalled_or_suspended_while_waiting_for_review_the_run_ends_and_posts_nothing(
    otto: Otto, repo: Callable[..., Repo], change: str
) -> None:
    otto.world.model.load(ONE_TASK)
    r = repo()
    installation = otto.sim.installation_for(otto.world.app_id, r.owner).id
    number, rid, _ = await waiting_run(otto, r)
    comment_before = [c.body for c in otto.sim.comments(r.owner, r.name, number)]
    since = mark(otto)

    if change == "deleted":
        delivery = otto.sim.uninstall_app(otto.world.app_id, r.owner, sender=r.maintainer)
    else:
        delivery = otto.sim.suspend_installation(otto.world.app_id, r.owner, sender=r.maintainer)
    assert delivery.status_code == 202, delivery.response_body

    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final)
    assert state.phase == RunPhase.CANCELLED
    what = "uninstalled from" if change == "deleted" else "suspended"
    assert what in state.reason, state.reason
    assert r.owner in state.reason
    assert f"@{r.maintainer}" in state.reason
    assert "nothing more is pushed or posted" in state.reason
    assert state.stop_requested_by == r.maintainer
    assert (
        await delivery_result(otto, delivery.id)
        == f"installation {installation} ({r.owner}) {change}: stopped 1 run(s)"
    )
    # nothing more was written to GitHub, nor asked of it on the installation's behalf
    assert [c.body for c in otto.sim.comments(r.owner, r.name, number)] == comment_before
    assert writes_to(otto, r.owner, since) == []
    assert token_requests(otto, installation, since) == []
    # Mission Control shows the end and why
    shown = await eventually(lambda: (s := snapshot(otto, state.run_id)) and s.final and s)
    assert shown.state.reason == state.reason
    if change == "deleted":
        await keep_history(otto, run_workflow_id(rid, number), "uninstalled")


async def test_a_repository_taken_out_of_the_installation_stops_only_its_runs(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    otto.world.model.load(ONE_TASK)
    r = repo()
    other = Repo(owner=r.owner, name="other", maintainer=r.maintainer, outsider=r.outsider)
    otto.sim.create_repo(other.owner, other.name, dict(SAMPLE_REPO))
    otto.sim.set_permission(other.owner, other.name, other.maintainer, "write")
    number, rid, _ = await waiting_run(otto, r)
    other_number, other_rid, other_state = await waiting_run(otto, other)
    since = mark(otto)

    delivery = otto.sim.remove_installation_repositories(
        otto.world.app_id, r.owner, [r.name], sender=r.maintainer
    )
    assert delivery.status_code == 202, delivery.response_body
    state = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final)
    assert state.phase == RunPhase.CANCELLED
    assert f"{r.owner}/{r.name} was removed from the Otto App's installation" in state.reason, state.reason
    assert "stopped 1 run(s)" in await delivery_result(otto, delivery.id)
    assert writes_to(otto, r.owner, since) == []  # neither repository heard from Otto meanwhile

    # the other repository's run is untouched: its approval still merges
    still = await wait_for_state(otto.client, other_rid, other_number, settled)
    assert still.phase == RunPhase.WAITING_REVIEW
    pr = otto.sim.pulls(other.owner, other.name)[0]
    otto.sim.submit_review(other.owner, other.name, pr.number, other.maintainer, "APPROVED")
    done = await wait_for_state(otto.client, other_rid, other_number, lambda s: s.phase.final)
    assert done.phase == RunPhase.DONE, done.reason
    assert done.record("t1").status == TaskStatus.MERGED
    assert other_state.record("t1").pr_number == pr.number


async def test_a_delivery_for_an_unknown_installation_is_said_once_and_not_retried(
    otto: Otto, repo: Callable[..., Repo], caplog: pytest.LogCaptureFixture
) -> None:
    """The label reached no one (Otto was down); the App was uninstalled; then the label's delivery is
    redelivered: its installation is gone. One token request, one log line, no retry, nothing posted."""
    caplog.set_level(logging.DEBUG)
    r = repo()
    installation = otto.sim.installation_for(otto.world.app_id, r.owner).id
    webhooks = otto.sim.app(otto.world.app_id).webhook_url
    otto.sim.set_webhook_url(otto.world.app_id, None)
    try:
        number = otto.sim.create_issue(r.owner, r.name, "Add b", "Please.", r.maintainer)
        labeled = otto.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
        assert labeled.status_code is None  # not delivered
    finally:
        otto.sim.set_webhook_url(otto.world.app_id, webhooks)
    otto.sim.uninstall_app(otto.world.app_id, r.owner, sender=r.maintainer)
    since = mark(otto)

    again = otto.sim.redeliver(labeled.id)
    assert again.status_code == 202, again.response_body
    assert await delivery_result(otto, labeled.id) == "installation unavailable: nothing done"
    assert token_requests(otto, installation, since) == [404]  # asked once, not retried
    said = [  # what an operator reads (INFO and up) about this installation
        rec
        for rec in caplog.records
        if rec.levelno >= logging.INFO and f"installation {installation}" in rec.getMessage()
    ]
    unknown = [rec for rec in said if "unknown to GitHub" in rec.getMessage()]
    assert len(unknown) == 1, [rec.getMessage() for rec in said]
    assert f"(account {r.owner})" in unknown[0].getMessage()
    assert unknown[0].levelno == logging.WARNING
    assert (
        not [  # Temporal's own "Completing activity as failed" stays quiet (debug) for it
            rec
            for rec in caplog.records
            if rec.levelno >= logging.WARNING and rec.name.startswith("temporalio")
        ]
    )
    assert writes_to(otto, r.owner, since) == []


async def test_a_late_suspend_delivery_after_the_unsuspend_stops_nothing(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    """Deliveries can come late or twice (a redelivery): Otto asks GitHub before it stops anything, so a
    stale ``installation.suspend`` after the ``unsuspend`` leaves the runs alone."""
    otto.world.model.load(ONE_TASK)
    r = repo()
    number, rid, _ = await waiting_run(otto, r)
    webhooks = otto.sim.app(otto.world.app_id).webhook_url
    otto.sim.set_webhook_url(otto.world.app_id, None)
    try:
        suspended = otto.sim.suspend_installation(otto.world.app_id, r.owner, sender=r.maintainer)
        otto.sim.unsuspend_installation(otto.world.app_id, r.owner, sender=r.maintainer)
    finally:
        otto.sim.set_webhook_url(otto.world.app_id, webhooks)

    late = otto.sim.redeliver(suspended.id)
    assert late.status_code == 202, late.response_body
    result = await delivery_result(otto, suspended.id)
    assert result.endswith("is active again; nothing stopped"), result
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW
    assert state.stop_requested_by is None
    pr = otto.sim.pulls(r.owner, r.name)[0]  # and it still merges
    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    await eventually(lambda: otto.sim.pull(r.owner, r.name, pr.number).merged)


async def test_a_refused_installation_token_is_replaced_not_retried_as_is(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    """GitHub revokes the installation's tokens (as it does when the App is reinstalled or a token leaks):
    the cached token's 401 makes Otto ask for a new one instead of retrying with the refused one."""
    otto.world.model.load(ONE_TASK)
    r = repo()
    installation = otto.sim.installation_for(otto.world.app_id, r.owner).id
    number, rid, _ = await waiting_run(otto, r)
    otto.sim.expire_tokens()
    since = mark(otto)
    pr = otto.sim.pulls(r.owner, r.name)[0]
    otto.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    done = await wait_for_state(otto.client, rid, number, lambda s: s.phase.final)
    assert done.phase == RunPhase.DONE, done.reason
    assert token_requests(otto, installation, since) == [201]  # one new token, then on with it
    refused = [c for c in otto.sim.calls[since[0] :] if c.status == 401]
    assert len(refused) == 1, [(c.method, c.path) for c in refused]


async def test_a_removal_naming_another_installations_repository_stops_nothing_there(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    """Runs are matched on their own installation and repository: a removal delivery of installation A that
    names a repository of installation B (by its id) leaves B's run alone."""
    otto.world.model.load(ONE_TASK)
    victim = repo()
    number, rid, _ = await waiting_run(otto, victim)
    other = repo()
    installation = otto.sim.installation_for(otto.world.app_id, other.owner).id
    payload = {
        "action": "removed",
        "installation": {"id": installation, "account": {"login": other.owner}},
        "repository_selection": "selected",
        "repositories_added": [],
        "repositories_removed": [
            {"id": rid, "name": victim.name, "full_name": f"{victim.owner}/{victim.name}", "private": True}
        ],
        "sender": render.user(otto.sim.user(other.maintainer), otto.sim.base_url),
    }
    body = json.dumps(payload).encode()
    delivery = f"cross-{rid}"
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            f"{otto.server.url}/webhooks",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "installation_repositories",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign(otto.world.webhook_secret, body),
            },
        )
    assert answer.status_code == 202, answer.text
    assert (await delivery_result(otto, delivery)).endswith("removed: stopped 0 run(s)")
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW
    assert state.stop_requested_by is None
