"""Mission Control's sessions on a clock the test moves: the lifetime from the sign-in, the idle timeout that
use pushes back, and the sign-out's revocation record, read by a second process through the shared store."""

from __future__ import annotations

from http.cookies import SimpleCookie
from pathlib import Path

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from app.artifacts import LocalArtifactStore
from app.settings import Settings
from app.web.sessions import SESSION_COOKIE, Sessions, revocation_key

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path,
        session_secret=SecretStr("s" * 32),
        ui_session_max_age_s=int(12 * HOUR),
        ui_session_idle_s=int(2 * HOUR),
    )


def request(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())] if cookie else []
    return Request(
        {"type": "http", "method": "GET", "path": "/runs", "headers": headers, "query_string": b""}
    )


def cookie_set(response: Response) -> str | None:
    for name, value in response.raw_headers:
        if name == b"set-cookie":
            morsel = SimpleCookie(value.decode())[SESSION_COOKIE]
            return morsel.value or None
    return None


def signed_in(sessions: Sessions) -> str:
    response = Response()
    sessions.start(request(None), response, "alice", 7)
    cookie = cookie_set(response)
    assert cookie
    return cookie


def test_a_session_lives_until_its_idle_timeout_and_use_pushes_that_back(tmp_path: Path) -> None:
    clock = Clock()
    sessions = Sessions(settings(tmp_path), LocalArtifactStore(tmp_path / "store"), clock)
    cookie = signed_in(sessions)
    clock.now += 2 * HOUR - 60
    user = sessions.user(request(cookie))
    assert user is not None
    assert user.login == "alice"
    response = Response()
    sessions.refresh(request(cookie), response, user)  # the session is in use: signed again
    renewed = cookie_set(response)
    assert renewed
    clock.now += 2 * HOUR - 60
    assert sessions.user(request(cookie)) is None  # the old copy went idle
    assert sessions.user(request(renewed)) is not None  # the one in use did not


def test_a_session_in_use_still_ends_at_its_lifetime(tmp_path: Path) -> None:
    clock = Clock()
    sessions = Sessions(settings(tmp_path), LocalArtifactStore(tmp_path / "store"), clock)
    cookie = signed_in(sessions)
    for _ in range(12):  # used every hour for twelve hours
        clock.now += HOUR - 1
        user = sessions.user(request(cookie))
        assert user is not None
        response = Response()
        sessions.refresh(request(cookie), response, user)
        cookie = cookie_set(response) or cookie
    clock.now += 13  # 12 h after the sign-in
    assert sessions.user(request(cookie)) is None


def test_a_sign_out_is_seen_by_another_process_sharing_the_store(tmp_path: Path) -> None:
    clock = Clock()
    one = Sessions(settings(tmp_path), LocalArtifactStore(tmp_path / "store"), clock)
    other = Sessions(settings(tmp_path), LocalArtifactStore(tmp_path / "store"), clock)
    cookie = signed_in(one)
    second = signed_in(one)  # the same person in another browser
    user = other.user(request(cookie))
    assert user is not None
    response = Response()
    one.end(response, user)
    assert cookie_set(response) is None  # the cookie is dropped from the browser
    assert one.user(request(cookie)) is None
    assert other.user(request(cookie)) is None
    assert (tmp_path / "store" / revocation_key(user.sid)).is_file()
    assert other.user(request(second)) is not None  # only that session ended


def test_cookies_without_a_session_id_or_forged_are_no_session(tmp_path: Path) -> None:
    clock = Clock()
    sessions = Sessions(settings(tmp_path), LocalArtifactStore(tmp_path / "store"), clock)
    old_style = sessions._sessions.dumps({"login": "alice", "id": 7, "csrf": "x"})
    assert sessions.user(request(old_style)) is None
    assert sessions.user(request(signed_in(sessions)[:-2] + "xx")) is None
