"""Who is looking: sign-in with GitHub (the App's user authorization flow), signed session cookies, CSRF.

The session cookie carries the GitHub login, its user id, a random session id, when the session began and a
random CSRF value, signed with ``OTTO_SESSION_SECRET`` (itsdangerous, timestamped); HttpOnly, SameSite=Lax
(so a link from GitHub opens a signed-in page), Secure behind https. A session ends, whatever the cookie
says, when
- it is older than ``OTTO_UI_SESSION_MAX_AGE_S`` (from the sign-in),
- it went unused for ``OTTO_UI_SESSION_IDLE_S`` (the cookie is signed again as it is used), or
- its person signed out: the sign-out writes a revocation record for the session id into the artifact store,
  which every web process reads, so a copy of the cookie kept after the sign-out opens nothing anywhere.
No GitHub token is kept: what a user may see and do is asked of GitHub with the App's installation token on
each repository (the same check `/otto` comment commands get), so nothing in the cookie grants access by
itself, and losing access on GitHub hides a repository's runs at the next permission refresh.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from githubkit import GitHub, TokenAuthStrategy
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from app.artifacts import ArtifactStore
from app.settings import Settings
from app.tls import client_ssl_context

log = logging.getLogger("otto.web")

SESSION_COOKIE = "otto_session"
OAUTH_COOKIE = "otto_oauth"
OAUTH_MAX_AGE_S = 600


@dataclass(frozen=True)
class User:
    login: str
    id: int
    csrf: str
    sid: str = ""  # the session's id (its revocation record's name)
    signed_at: float = 0.0  # when the cookie was last signed (its idle clock)


def revocation_key(sid: str) -> str:
    """Where a signed-out session's record lives in the artifact store (shared by every web process)."""
    return f"sessions/revoked/{sid}.json"


def _clocked(secret: str, salt: str, clock: Callable[[], float]) -> URLSafeTimedSerializer:
    """itsdangerous' timed serializer on an injectable clock (tests age a session without waiting)."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return URLSafeTimedSerializer(secret, salt=salt, signer=Signer)


class SignInError(Exception):
    """The sign-in could not be completed (said to the person, never a 500)."""


def safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, host or protocol-relative ``//``): no open redirects."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    if any(ord(c) < 32 for c in target):
        return "/runs"
    return target


class Sessions:
    def __init__(
        self, settings: Settings, store: ArtifactStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        secret = settings.session_secret.get_secret_value() if settings.session_secret else ""
        if not secret:
            log.warning("OTTO_SESSION_SECRET is unset: sessions last only as long as this web process")
            secret = secrets.token_hex(32)
        self._sessions = _clocked(secret, "otto-session", clock)
        self._oauth = URLSafeTimedSerializer(secret, salt="otto-oauth-state")

    @property
    def configured(self) -> bool:
        s = self.settings
        return bool(s.github_client_id and s.github_client_secret)

    def base_url(self, request: Request) -> str:
        return (self.settings.public_url or str(request.base_url)).rstrip("/")

    def _secure(self, request: Request) -> bool:
        return self.base_url(request).startswith("https://")

    # --- the session ------------------------------------------------------------------------------
    def user(self, request: Request) -> User | None:
        """The person of a live session, or None: no cookie, a bad signature, too old, idle too long, or
        signed out (the revocation record is read on every request, so a sign-out holds at once)."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        s = self.settings
        try:
            data, signed_at = self._sessions.loads(
                raw, max_age=min(s.ui_session_idle_s, s.ui_session_max_age_s), return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        login, uid, csrf = data.get("login"), data.get("id"), data.get("csrf")
        sid, began = data.get("sid"), data.get("began")
        if not isinstance(login, str) or not isinstance(uid, int) or not isinstance(csrf, str):
            return None
        if not isinstance(sid, str) or not sid or not isinstance(began, int | float):
            return None  # a cookie from before session ids: sign in again
        if self.clock() - began > s.ui_session_max_age_s:
            return None
        try:
            revoked = self.store.get(revocation_key(sid)) is not None
        except Exception:
            log.warning("could not read session revocations from %s", self.store.describe(), exc_info=True)
            return None  # fail closed
        if revoked:
            return None
        return User(login, uid, csrf, sid, signed_at.timestamp())

    def start(self, request: Request, response: Response, login: str, uid: int) -> None:
        payload = {
            "login": login,
            "id": uid,
            "csrf": secrets.token_urlsafe(24),
            "sid": secrets.token_urlsafe(18),
            "began": int(self.clock()),
        }
        self._set(request, response, payload)

    def refresh(self, request: Request, response: Response, user: User) -> None:
        """Sign the cookie again when it is older than a tenth of the idle timeout: a session in use stays
        alive, an unused one expires after ``OTTO_UI_SESSION_IDLE_S``."""
        if self.clock() - user.signed_at < self.settings.ui_session_idle_s / 10:
            return
        raw = request.cookies.get(SESSION_COOKIE, "")
        try:
            payload = self._sessions.loads(raw)
        except BadSignature:
            return
        self._set(request, response, payload)

    def _set(self, request: Request, response: Response, payload: dict[str, Any]) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.dumps(payload),
            max_age=self.settings.ui_session_max_age_s,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
        )

    def end(self, response: Response, user: User) -> None:
        """Sign out: the session is revoked for every web process (its record in the artifact store), then
        the cookie is dropped from this browser."""
        record = {"login": user.login, "revoked_at": int(self.clock())}
        self.store.put(revocation_key(user.sid), json.dumps(record).encode())
        response.delete_cookie(SESSION_COOKIE, path="/")

    def csrf_ok(self, request: Request, user: User, token: str | None) -> bool:
        """The form's token is the session's, and a browser-sent Origin (if any) is this site."""
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            mine = urlsplit(self.base_url(request))
            theirs = urlsplit(origin)
            if (theirs.scheme, theirs.netloc) != (mine.scheme, mine.netloc):
                return False
        return bool(token) and hmac.compare_digest(str(token), user.csrf)

    # --- GitHub's user authorization flow -----------------------------------------------------------
    def authorize_redirect(self, request: Request, next_path: str) -> tuple[str, str]:
        """(URL of GitHub's authorize page, the signed state cookie value)."""
        state = secrets.token_urlsafe(24)
        cookie = self._oauth.dumps({"state": state, "next": safe_next(next_path)})
        query = urlencode(
            {
                "client_id": self.settings.github_client_id or "",
                "redirect_uri": self.base_url(request) + "/login/callback",
                "state": state,
            }
        )
        return f"{self.settings.github_web_url.rstrip('/')}/login/oauth/authorize?{query}", cookie

    def set_oauth_cookie(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(
            OAUTH_COOKIE,
            value,
            max_age=OAUTH_MAX_AGE_S,
            path="/login",
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
        )

    def check_state(self, request: Request, state: str | None) -> str:
        """The page to go to after sign-in, if ``state`` is the one this browser was sent off with."""
        raw = request.cookies.get(OAUTH_COOKIE)
        if not raw or not state:
            raise SignInError("The sign-in expired or was started in another browser; please sign in again.")
        try:
            data = self._oauth.loads(raw, max_age=OAUTH_MAX_AGE_S)
        except BadSignature:
            raise SignInError("The sign-in expired; please sign in again.") from None
        if not isinstance(data, dict) or not hmac.compare_digest(str(data.get("state", "")), state):
            raise SignInError("The sign-in did not match this browser's; please sign in again.")
        return safe_next(data.get("next"))

    async def exchange(self, request: Request, code: str) -> tuple[str, int]:
        """Trade the code for a user token, ask GitHub who that is, and forget the token."""
        s = self.settings
        secret = s.github_client_secret.get_secret_value() if s.github_client_secret else ""
        try:
            async with httpx.AsyncClient(timeout=15, verify=client_ssl_context()) as http:
                resp = await http.post(
                    f"{s.github_web_url.rstrip('/')}/login/oauth/access_token",
                    data={
                        "client_id": s.github_client_id or "",
                        "client_secret": secret,
                        "code": code,
                        "redirect_uri": self.base_url(request) + "/login/callback",
                    },
                    headers={"Accept": "application/json"},
                )
            data: Any = resp.json()
        except (httpx.HTTPError, ValueError) as e:
            raise SignInError(
                f"GitHub could not be reached to finish the sign-in ({type(e).__name__})."
            ) from e
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            error = data.get("error_description") or data.get("error") if isinstance(data, dict) else None
            raise SignInError(f"GitHub refused the sign-in: {error or 'no token in its answer'}.")
        token: str = data["access_token"]
        try:
            gh = GitHub(
                TokenAuthStrategy(token),
                base_url=s.github_api_url.rstrip("/") + "/",
                ssl_verify=client_ssl_context(),
            )
            me = (await gh.rest.users.async_get_authenticated()).parsed_data
        except Exception as e:
            raise SignInError(f"GitHub did not say who signed in ({type(e).__name__}).") from e
        return me.login, int(me.id)
