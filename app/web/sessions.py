"""Who is looking: sign-in with GitHub (the App's user authorization flow), signed session cookies, CSRF.

The session cookie carries the GitHub login, its user id and a random CSRF value, signed with
``OTTO_SESSION_SECRET`` (itsdangerous, timestamped: it expires after ``OTTO_UI_SESSION_MAX_AGE_S``);
HttpOnly, SameSite=Lax (so a link from GitHub opens a signed-in page), Secure behind https. No GitHub token
is kept: what a user may see and do is asked of GitHub with the App's installation token on each repository
(the same check `/otto` comment commands get), so nothing in the cookie grants access by itself.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from githubkit import GitHub, TokenAuthStrategy
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

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
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secret = settings.session_secret.get_secret_value() if settings.session_secret else ""
        if not secret:
            log.warning("OTTO_SESSION_SECRET is unset: sessions last only as long as this web process")
            secret = secrets.token_hex(32)
        self._sessions = URLSafeTimedSerializer(secret, salt="otto-session")
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
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._sessions.loads(raw, max_age=self.settings.ui_session_max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        login, uid, csrf = data.get("login"), data.get("id"), data.get("csrf")
        if not isinstance(login, str) or not isinstance(uid, int) or not isinstance(csrf, str):
            return None
        return User(login, uid, csrf)

    def start(self, request: Request, response: Response, login: str, uid: int) -> None:
        value = self._sessions.dumps({"login": login, "id": uid, "csrf": secrets.token_urlsafe(24)})
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.settings.ui_session_max_age_s,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
        )

    def end(self, response: Response) -> None:
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
