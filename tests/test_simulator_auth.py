"""App JWTs and installation tokens are checked like GitHub does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit.exception import RequestFailed

from app.dev.simulator import Simulator
from tests.conftest_sim import APP_ID, OWNER, REPO, World, rsa_pair, sim_servers_fixture, world_fixture  # noqa: F401


def app_jwt(
    world: World, iat_offset: int = -60, lifetime: int = 600, iss: object = APP_ID, key: str | None = None
) -> str:
    now = int(time.time())
    claims = {"iat": now + iat_offset, "exp": now + iat_offset + lifetime, "iss": iss}
    # PyJWS signs raw claims: pyjwt's encode() refuses an integer ``iss``, which GitHub accepts
    return jwt.api_jws.encode(json.dumps(claims).encode(), key or world.private_key, algorithm="RS256")


def get_app(world: World, token: str) -> httpx.Response:
    return world.http.get(f"{world.url}/api/v3/app", headers={"Authorization": f"Bearer {token}"})


def test_valid_jwt_with_int_or_string_issuer(world: World) -> None:
    assert get_app(world, app_jwt(world)).status_code == 200
    assert get_app(world, app_jwt(world, iss=str(APP_ID))).json()["id"] == APP_ID


@pytest.mark.parametrize(
    "kwargs",
    [
        {"iat_offset": -700, "lifetime": 600},  # expired
        {"lifetime": 3600},  # more than 10 minutes
        {"iss": 999},  # unknown App
    ],
)
def test_bad_jwts_are_rejected(world: World, kwargs: dict[str, Any]) -> None:
    resp = get_app(world, app_jwt(world, **kwargs))
    assert resp.status_code == 401
    assert resp.json()["documentation_url"].startswith("https://docs.github.com")


def test_jwt_signed_by_another_key_is_rejected(world: World) -> None:
    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    assert get_app(world, app_jwt(world, key=other)).status_code == 401
    assert get_app(world, "not-a-jwt").status_code == 401


def test_installation_tokens_scope_expiry_and_bad_credentials(world: World) -> None:
    sim = world.sim
    sim.create_repo("someone", "elsewhere", {"a": "b"})
    token = world.installation_token()
    with world.client(token) as gh:
        assert gh.rest.repos.get(OWNER, REPO).status_code == 200
        with pytest.raises(RequestFailed) as err:
            gh.rest.repos.get("someone", "elsewhere")
        assert err.value.response.status_code == 404
    # the "token" scheme works as well as Bearer
    resp = world.http.get(
        f"{world.url}/api/v3/repos/{OWNER}/{REPO}", headers={"Authorization": f"token {token}"}
    )
    assert resp.status_code == 200
    resp = world.http.get(
        f"{world.url}/api/v3/repos/{OWNER}/{REPO}", headers={"Authorization": "token ghs_nope"}
    )
    assert (resp.status_code, resp.json()["message"]) == (401, "Bad credentials")
    # a JWT is not an installation token, and vice versa
    resp = world.http.get(
        f"{world.url}/api/v3/repos/{OWNER}/{REPO}", headers={"Authorization": f"Bearer {app_jwt(world)}"}
    )
    assert resp.status_code == 401
    assert get_app(world, token).status_code == 401
    sim.expire_tokens()
    with world.client(token) as gh, pytest.raises(RequestFailed) as err:
        gh.rest.repos.get(OWNER, REPO)
    assert err.value.response.status_code == 401


def test_token_for_someone_elses_installation_is_404(world: World) -> None:
    with world.app_client() as gh, pytest.raises(RequestFailed) as err:
        gh.rest.apps.create_installation_access_token(123456789)
    assert err.value.response.status_code == 404


def test_githubkit_app_auth_fetches_tokens_by_itself(world: World) -> None:
    with world.app_client() as gh:
        inst = gh.with_auth(gh.auth.as_installation(world.installation_id))
        issue = inst.rest.issues.create_comment
        number = world.sim.create_issue(OWNER, REPO, "t", "b", "alice")
        assert issue(OWNER, REPO, number, body="hello").status_code == 201
    calls = world.sim.calls
    assert any(
        c.path == f"/app/installations/{world.installation_id}/access_tokens" and c.actor == f"app:{APP_ID}"
        for c in calls
    )
    assert any(c.method == "POST" and c.actor == f"installation:{world.installation_id}" for c in calls)


def test_personal_token_acts_as_the_human(world: World) -> None:
    token = world.sim.create_user_token("carol")
    number = world.sim.create_issue(OWNER, REPO, "t", "b", "alice")
    with world.client(token) as gh:
        made = gh.rest.issues.create_comment(OWNER, REPO, number, body="me").parsed_data
        assert made.user is not None
        assert made.user.login == "carol"
        with pytest.raises(RequestFailed) as err:  # read access cannot label
            gh.rest.issues.add_labels(OWNER, REPO, number, labels=["x"])
        assert err.value.response.status_code == 403


def test_bot_user_id_never_equals_the_app_id(tmp_path: Path) -> None:
    sim = Simulator(tmp_path)
    try:
        first_free_id = 1001  # the simulator's first id: an App choosing it must not share it with its bot
        app = sim.register_app(first_free_id, "clash", rsa_pair()[1])
        assert app.bot.login == "clash[bot]"
        assert app.bot.type == "Bot"
        assert app.bot.id != first_free_id
    finally:
        sim.close()
