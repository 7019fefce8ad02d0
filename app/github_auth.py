"""GitHub App authentication: the App JWT (pyjwt, RS256), cached installation tokens, githubkit clients.

The installation token is the only credential that reaches git, and only per command (see workspace.py).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from githubkit import GitHub, TokenAuthStrategy
from githubkit.auth.base import BaseAuthStrategy
from githubkit.core import GitHubCore
from githubkit.exception import RequestFailed

from app.github_retry import GitHubRetry
from app.settings import Settings
from app.tls import client_ssl_context

JWT_BACKDATE_S = 60  # GitHub's advice: iat 60 s in the past against clock drift
JWT_LIFETIME_S = 9 * 60  # GitHub's limit is 10 minutes after iat; stay below it
TOKEN_REFRESH_MARGIN_S = 5 * 60  # renew installation tokens this long before they expire


@functools.lru_cache(maxsize=8)
def _signing_key(private_key_pem: str) -> PrivateKeyTypes:
    """The App's key, parsed and checked once per process (parsing an RSA key checks it: milliseconds that
    every App JWT paid again)."""
    return serialization.load_pem_private_key(private_key_pem.encode(), password=None)


def make_app_jwt(app_id: int | str, private_key_pem: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time()) - JWT_BACKDATE_S
    payload = {"iat": issued, "exp": issued + JWT_LIFETIME_S, "iss": str(app_id)}
    return jwt.encode(payload, _signing_key(private_key_pem), algorithm="RS256")  # type: ignore[arg-type]


class _AppJWTAuth(httpx.Auth):
    def __init__(self, app_id: int, private_key_pem: str) -> None:
        self._app_id = app_id
        self._key = private_key_pem

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {make_app_jwt(self._app_id, self._key)}"
        yield request


@dataclass
class AppJWTAuthStrategy(BaseAuthStrategy):
    """Authenticate as the App itself (``/app/...`` endpoints) with a freshly minted JWT per request."""

    app_id: int
    private_key_pem: str

    def get_auth_flow(self, github: GitHubCore[Any]) -> httpx.Auth:
        return _AppJWTAuth(self.app_id, self.private_key_pem)


class InstallationUnavailable(Exception):
    """GitHub won't give the App a token for this installation: it is not installed there (any more: 404)
    or the installation is suspended (403). Retrying can't help; the activities report it as a
    non-retryable failure (``app.activities.installation_failures``)."""

    def __init__(self, installation_id: int, suspended: bool) -> None:
        self.installation_id = installation_id
        self.suspended = suspended
        what = "is suspended" if suspended else "is unknown to GitHub (the App is not installed there)"
        super().__init__(f"installation {installation_id} {what}")


def _unavailable(e: RequestFailed, installation_id: int) -> InstallationUnavailable | None:
    status = e.response.status_code
    if status == 404:
        return InstallationUnavailable(installation_id, suspended=False)
    if status == 403:
        try:
            message = str(e.response.json().get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        if "suspended" in message.lower():
            return InstallationUnavailable(installation_id, suspended=True)
    return None


@dataclass(frozen=True)
class GitIdentity:
    name: str
    email: str


@dataclass
class _CachedToken:
    token: str
    expires_at: float


class GitHubApp:
    """One long-lived githubkit configuration for the App, handing out installation clients and tokens."""

    def __init__(self, settings: Settings) -> None:
        if not settings.has_github_credentials:
            raise RuntimeError(
                "GitHub App credentials are missing: set OTTO_GITHUB_APP_ID and OTTO_GITHUB_PRIVATE_KEY "
                "(or OTTO_GITHUB_PRIVATE_KEY_PATH), or run `otto demo` to use the local simulator"
            )
        assert settings.github_app_id is not None
        assert settings.private_key_pem is not None
        self.settings = settings
        self.app_id = settings.github_app_id
        base_url = settings.github_api_url.rstrip("/") + "/"
        self.app_client: GitHub[AppJWTAuthStrategy] = GitHub(
            AppJWTAuthStrategy(self.app_id, settings.private_key_pem),
            base_url=base_url,
            user_agent="otto-github-app",
            http_cache=False,
            timeout=30.0,
            ssl_verify=client_ssl_context(),
            # 5xx and short rate-limit waits in process; long waits raise RateLimited (durable timers)
            auto_retry=GitHubRetry(max_inline_wait_s=settings.github_max_inline_wait_s),
        )
        self._tokens: dict[int, _CachedToken] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._identity: GitIdentity | None = None
        self._slug: str | None = None

    async def installation_token(self, installation_id: int) -> str:
        cached = self._tokens.get(installation_id)
        if cached and cached.expires_at - time.time() > TOKEN_REFRESH_MARGIN_S:
            return cached.token
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and cached.expires_at - time.time() > TOKEN_REFRESH_MARGIN_S:
                return cached.token
            try:
                resp = await self.app_client.rest.apps.async_create_installation_access_token(installation_id)
            except RequestFailed as e:
                unavailable = _unavailable(e, installation_id)
                if unavailable is not None:
                    raise unavailable from e
                raise
            data = resp.parsed_data
            expires = datetime.strptime(data.expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            self._tokens[installation_id] = _CachedToken(data.token, expires.timestamp())
            return data.token

    def forget_token(self, token: str) -> bool:
        """Drop ``token`` from the cache (GitHub refused it: revoked, the App uninstalled); the next call
        asks for a new one. True when it was cached."""
        for installation_id, cached in list(self._tokens.items()):
            if cached.token == token:
                del self._tokens[installation_id]
                return True
        return False

    def cached_tokens(self) -> list[str]:
        """Every token this process holds, for redaction."""
        return [t.token for t in self._tokens.values()]

    async def installation_client(self, installation_id: int) -> GitHub[TokenAuthStrategy]:
        """Shares the App client's configuration, the retry policy included."""
        token = await self.installation_token(installation_id)
        return self.app_client.with_auth(TokenAuthStrategy(token))

    async def app_slug(self) -> str:
        if self._slug is None:
            app = (await self.app_client.rest.apps.async_get_authenticated()).parsed_data
            if app is None or not app.slug:
                raise RuntimeError("GET /app returned no slug for this App")
            self._slug = app.slug
        return self._slug

    async def bot_login(self) -> str:
        return f"{await self.app_slug()}[bot]"

    async def bot_identity(self, installation_id: int) -> GitIdentity:
        """``<slug>[bot] <ID+<slug>[bot]@users.noreply.github.com>``, ID being the bot *user's* id."""
        if self._identity is None:
            login = await self.bot_login()
            gh = await self.installation_client(installation_id)
            user = (await gh.rest.users.async_get_by_username(login)).parsed_data
            self._identity = GitIdentity(name=login, email=f"{user.id}+{login}@users.noreply.github.com")
        return self._identity
