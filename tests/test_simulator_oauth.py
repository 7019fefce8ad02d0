"""The simulator's user authorization flow (what Mission Control's sign-in talks to), answered like GitHub:
codes are single use and bound to the client and redirect URI, wrong credentials get an ``error`` body, and
the user token acts with that person's own permissions."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.dev.local import LocalWorld

CALLBACK = "http://127.0.0.1:9/login/callback"


@pytest.fixture(autouse=True)
def callback(world: LocalWorld) -> Iterator[None]:
    """This App's registered callback URL for the test (a running Otto registers its own)."""
    app = world.sim.app(world.app_id)
    before, app.callback_url = app.callback_url, CALLBACK
    yield
    app.callback_url = before


def _code(world: LocalWorld, login: str, state: str = "s1") -> str:
    app = world.sim.app(world.app_id)
    page = httpx.get(
        f"{world.sim_server.url}/login/oauth/authorize",
        params={"client_id": app.client_id, "redirect_uri": CALLBACK, "state": state, "login": login},
    )
    assert page.status_code == 302, page.text
    target = urlsplit(page.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
    query = parse_qs(target.query)
    assert query["state"] == [state]
    return query["code"][0]


def _exchange(world: LocalWorld, code: str, secret: str | None = None) -> dict[str, str]:
    app = world.sim.app(world.app_id)
    resp = httpx.post(
        f"{world.sim_server.url}/login/oauth/access_token",
        data={
            "client_id": app.client_id,
            "client_secret": secret if secret is not None else app.client_secret,
            "code": code,
            "redirect_uri": CALLBACK,
        },
        headers={"Accept": "application/json"},
    )
    assert resp.status_code == 200
    data: dict[str, str] = resp.json()
    return data


def test_the_authorize_page_offers_people_and_escapes_their_names(world: LocalWorld) -> None:
    sim = world.sim
    sim.create_user("oauth-ann")
    sim.create_user("<b>oauth-evil</b>")
    page = httpx.get(
        f"{world.sim_server.url}/login/oauth/authorize",
        params={"client_id": sim.app(world.app_id).client_id, "redirect_uri": CALLBACK, "state": "x"},
    )
    assert page.status_code == 200
    assert "Sign in as oauth-ann" in page.text
    assert "<b>oauth-evil</b>" not in page.text
    assert "&lt;b&gt;oauth-evil&lt;/b&gt;" in page.text
    unknown = httpx.get(f"{world.sim_server.url}/login/oauth/authorize", params={"client_id": "nope"})
    assert unknown.status_code == 404


def test_a_code_is_exchanged_once_for_a_user_token_with_that_persons_permissions(world: LocalWorld) -> None:
    sim = world.sim
    sim.create_user("oauth-org", type="Organization")
    sim.create_user("oauth-bea")
    sim.create_repo("oauth-org", "private", {"README.md": "x"})
    sim.create_repo("oauth-org", "shared", {"README.md": "x"})
    sim.set_permission("oauth-org", "shared", "oauth-bea", "read")
    code = _code(world, "oauth-bea")
    token = _exchange(world, code)
    assert token["access_token"].startswith("ghu_")
    assert token["token_type"] == "bearer"
    assert _exchange(world, code)["error"] == "bad_verification_code"  # single use
    api = httpx.Client(
        base_url=f"{world.sim_server.url}/api/v3",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert api.get("/user").json()["login"] == "oauth-bea"
    shared = api.get("/repos/oauth-org/shared").json()
    assert shared["permissions"]["pull"] is True
    assert shared["permissions"]["push"] is False
    assert api.get("/repos/oauth-org/private").status_code == 404


def test_wrong_secret_unknown_code_and_wrong_redirect_are_refused(world: LocalWorld) -> None:
    sim = world.sim
    sim.create_user("oauth-cid")
    code = _code(world, "oauth-cid")
    assert _exchange(world, code, secret="wrong")["error"] == "incorrect_client_credentials"
    assert _exchange(world, "not-a-code")["error"] == "bad_verification_code"
    app = sim.app(world.app_id)
    mismatch = httpx.post(
        f"{world.sim_server.url}/login/oauth/access_token",
        data={
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "code": code,
            "redirect_uri": "https://evil.example/cb",
        },
        headers={"Accept": "application/json"},
    )
    assert mismatch.json()["error"] == "redirect_uri_mismatch"
    # no token, no user
    assert httpx.get(f"{world.sim_server.url}/api/v3/user").status_code == 401


def test_a_registered_callback_url_bounds_the_redirect_uri(world: LocalWorld) -> None:
    app = world.sim.app(world.app_id)
    bad = httpx.get(
        f"{world.sim_server.url}/login/oauth/authorize",
        params={"client_id": app.client_id, "redirect_uri": "https://evil.example/login/callback"},
    )
    assert bad.status_code == 400
    world.sim.create_user("oauth-dee")
    assert _code(world, "oauth-dee", state="s2")
