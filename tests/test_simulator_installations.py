"""The App's installation changing in the simulator as on GitHub: uninstalled, suspended, repositories taken
out of it. Tokens, REST, git and webhooks follow at once; the webhooks parse into Otto's event models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from githubkit import Response
from githubkit.exception import RequestFailed

from app.events import InstallationEvent, InstallationRepositoriesEvent
from tests.conftest_sim import APP_ID, OWNER, REPO, World, sim_servers_fixture, world_fixture  # noqa: F401


def status_of(call: Callable[[], Response[Any, Any]]) -> int:
    try:
        return call().status_code
    except RequestFailed as e:
        return e.response.status_code


def test_uninstalled_tokens_are_revoked_and_none_is_issued(world: World) -> None:
    token = world.installation_token()
    delivery = world.sim.uninstall_app(APP_ID, OWNER, sender=OWNER)
    assert delivery.status_code == 200
    event = InstallationEvent.model_validate(delivery.payload)
    assert (event.action, event.installation and event.installation.id) == ("deleted", world.installation_id)
    assert event.installation is not None
    assert event.installation.account_name == OWNER
    with world.client(token) as gh:
        assert status_of(lambda: gh.rest.repos.get(OWNER, REPO)) == 401
    with world.app_client() as app:
        assert status_of(lambda: app.rest.apps.create_installation_access_token(world.installation_id)) == 404
        assert status_of(lambda: app.rest.apps.get_installation(world.installation_id)) == 404
    clone = world.git("ls-remote", world.clone_url(), token=token, check=False)
    assert clone.returncode != 0
    # nothing more reaches the App from that account
    before = len(world.sim.deliveries)
    world.sim.create_issue(OWNER, REPO, "After", "", OWNER)
    assert len(world.sim.deliveries) == before


def test_a_suspended_installation_is_refused_until_unsuspended(world: World) -> None:
    token = world.installation_token()
    delivery = world.sim.suspend_installation(APP_ID, OWNER, sender=OWNER)
    event = InstallationEvent.model_validate(delivery.payload)
    assert event.action == "suspend"
    assert delivery.payload["installation"]["suspended_at"]
    with world.client(token) as gh, pytest.raises(RequestFailed) as err:
        gh.rest.repos.get(OWNER, REPO)
    assert err.value.response.status_code == 403
    assert err.value.response.json()["message"] == "This installation has been suspended"
    with world.app_client() as app:
        assert status_of(lambda: app.rest.apps.create_installation_access_token(world.installation_id)) == 403
        assert app.rest.apps.get_installation(world.installation_id).parsed_data.suspended_at is not None
    assert world.git("ls-remote", world.clone_url(), token=token, check=False).returncode != 0
    before = len(world.sim.deliveries)
    world.sim.create_issue(OWNER, REPO, "While suspended", "", OWNER)
    assert len(world.sim.deliveries) == before  # nothing is delivered to a suspended installation

    world.sim.unsuspend_installation(APP_ID, OWNER, sender=OWNER)
    with world.client(world.installation_token()) as gh:
        assert gh.rest.repos.get(OWNER, REPO).status_code == 200
    with world.app_client() as app:
        assert app.rest.apps.get_installation(world.installation_id).parsed_data.suspended_at is None


def test_repositories_taken_out_of_the_installation_are_out_of_reach(world: World) -> None:
    world.sim.create_repo(OWNER, "other", {"a.txt": "a\n"})
    token = world.installation_token()
    with world.client(token) as gh:
        listed = gh.rest.apps.list_repos_accessible_to_installation().parsed_data
        assert {r.name for r in listed.repositories} == {REPO, "other"}

    delivery = world.sim.remove_installation_repositories(APP_ID, OWNER, [REPO], sender=OWNER)
    event = InstallationRepositoriesEvent.model_validate(delivery.payload)
    assert event.action == "removed"
    assert [r.full_name for r in event.repositories_removed] == [f"{OWNER}/{REPO}"]
    assert event.repository_selection == "selected"
    with world.client(token) as gh:
        assert status_of(lambda: gh.rest.repos.get(OWNER, REPO)) == 404
        assert gh.rest.repos.get(OWNER, "other").status_code == 200
        listed = gh.rest.apps.list_repos_accessible_to_installation().parsed_data
        assert [r.name for r in listed.repositories] == ["other"]
        assert listed.repository_selection == "selected"
    assert world.git("ls-remote", world.clone_url(), token=token, check=False).returncode != 0
    before = len(world.sim.deliveries)
    world.sim.create_issue(OWNER, REPO, "Not delivered", "", OWNER)
    assert len(world.sim.deliveries) == before
    world.sim.create_issue(OWNER, "other", "Delivered", "", OWNER)
    assert len(world.sim.deliveries) == before + 1

    world.sim.add_installation_repositories(APP_ID, OWNER, [REPO], sender=OWNER)
    with world.client(token) as gh:
        assert gh.rest.repos.get(OWNER, REPO).status_code == 200
