"""Liveness (``GET /healthz``) and readiness (``GET /readyz``) of a web process, for Kubernetes-style probes.

- **Live** unless the process can no longer do anything useful and should be restarted: in ``otto serve``,
  when its embedded Temporal server died (Otto then shuts itself down too, so a supervisor restarts both).
- **Ready** when Otto can do its job right now: Temporal answers (describe the namespace: reachable,
  authenticated, the namespace exists) and the GitHub App can authenticate (``GET /app`` with the App's
  JWT); not while shutting down. Each check's answer is reused for ``ready_cache_s`` (one check runs at a
  time however many probes come), and a check slower than ``ready_timeout_s`` failed, so a probe costs
  nothing and never hangs. Failures are named in the body, in Otto's words (no secret, no upstream text).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from githubkit import GitHub
from githubkit.exception import RequestFailed, RequestTimeout
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from app.github_auth import AppJWTAuthStrategy
from app.settings import Settings
from app.tls import client_ssl_context

log = logging.getLogger("otto.health")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str  # "ok", or why not
    at: float  # time.monotonic() of the answer

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "age_s": round(max(0.0, now - self.at), 2)}


class CheckFailed(Exception):
    """A check's failure, in words fit for the probe's answer."""


class CachedCheck:
    """One readiness check: answers reused for ``ttl_s``, one run at a time, bounded by ``timeout_s``."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]], ttl_s: float, timeout_s: float) -> None:
        self.name = name
        self._run = run
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.last: CheckResult | None = None
        self.runs = 0  # how many times the check itself ran
        self._inflight: asyncio.Task[CheckResult] | None = None

    async def result(self) -> CheckResult:
        now = time.monotonic()
        if self.last is not None and now - self.last.at < self.ttl_s:
            return self.last
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._check(), name=f"otto-ready-{self.name}")
        # shielded: a probe that gives up does not cancel the check the others wait for
        return await asyncio.shield(self._inflight)

    async def _check(self) -> CheckResult:
        self.runs += 1
        try:
            await asyncio.wait_for(self._run(), self.timeout_s)
            result = CheckResult(True, "ok", time.monotonic())
        except TimeoutError:
            result = CheckResult(False, f"no answer within {self.timeout_s:g} s", time.monotonic())
        except CheckFailed as e:
            result = CheckResult(False, str(e), time.monotonic())
        except Exception as e:  # anything else: its kind only (its text may quote what it was sent)
            result = CheckResult(False, f"failed ({type(e).__name__})", time.monotonic())
        finally:
            self._inflight = None
        if not result.ok and (self.last is None or self.last.ok or self.last.detail != result.detail):
            log.warning("readiness: %s not ready: %s", self.name, result.detail)
        self.last = result
        return result


def temporal_check(client: Client, namespace: str, timeout_s: float) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace),
                retry=False,
                timeout=timedelta(seconds=timeout_s),
            )
        except RPCError as e:
            raise CheckFailed(f"Temporal did not answer: {e.status.name}") from e

    return run


def github_check(settings: Settings, timeout_s: float) -> Callable[[], Awaitable[None]]:
    """``GET /app`` as the App (a fresh JWT): the key, the App id and the API's reachability in one call."""
    client: GitHub[AppJWTAuthStrategy] | None = None
    if settings.has_github_credentials:
        assert settings.github_app_id is not None
        assert settings.private_key_pem is not None
        client = GitHub(
            AppJWTAuthStrategy(settings.github_app_id, settings.private_key_pem),
            base_url=settings.github_api_url.rstrip("/") + "/",
            user_agent="otto-github-app",
            http_cache=False,
            timeout=timeout_s,
            ssl_verify=client_ssl_context(),
            auto_retry=False,  # the probe asks again soon enough
        )

    async def run() -> None:
        if client is None:
            raise CheckFailed("no App credentials: set OTTO_GITHUB_APP_ID and OTTO_GITHUB_PRIVATE_KEY(_PATH)")
        try:
            await client.rest.apps.async_get_authenticated()
        except RequestFailed as e:
            status = e.response.status_code
            if status in (401, 403):
                raise CheckFailed(
                    f"GitHub refused the App's JWT ({status}): check OTTO_GITHUB_APP_ID and the private key"
                ) from e
            raise CheckFailed(f"GitHub answered GET /app with {status}") from e
        except RequestTimeout as e:
            raise CheckFailed("GitHub did not answer in time") from e
        except Exception as e:  # connection refused, DNS, TLS: the API is out of reach
            raise CheckFailed(f"GitHub is unreachable ({type(e).__name__})") from e

    return run


class Probes:
    """The state behind ``/healthz`` and ``/readyz``: set by the process (engine death, shutdown), read by
    the web app."""

    def __init__(self, settings: Settings, client: Client | None) -> None:
        ttl, timeout = settings.ready_cache_s, settings.ready_timeout_s
        self.checks: list[CachedCheck] = []
        if client is not None:
            temporal = temporal_check(client, settings.temporal_namespace, timeout)
            self.checks.append(CachedCheck("temporal", temporal, ttl, timeout))
        self.checks.append(CachedCheck("github", github_check(settings, timeout), ttl, timeout))
        self.engine_error: str | None = None
        self.shutting_down = False

    def engine_died(self, exit_code: int | None) -> None:
        self.engine_error = f"the embedded Temporal server exited (code {exit_code})"

    def live(self) -> tuple[bool, dict[str, Any]]:
        if self.engine_error is not None:
            return False, {"status": "unhealthy", "reason": self.engine_error}
        return True, {"status": "ok"}

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        checks: dict[str, Any] = {}
        if self.engine_error is not None:
            checks["engine"] = {"ok": False, "detail": self.engine_error}
        if self.shutting_down:
            checks["shutdown"] = {"ok": False, "detail": "shutting down"}
        results = await asyncio.gather(*(c.result() for c in self.checks))
        for check, result in zip(self.checks, results, strict=True):
            checks[check.name] = result.to_dict(now)
        ok = all(c["ok"] for c in checks.values())
        failed = [name for name, c in checks.items() if not c["ok"]]
        body: dict[str, Any] = {"status": "ready" if ok else "not ready", "checks": checks}
        if failed:
            body["failed"] = failed
        return ok, body
