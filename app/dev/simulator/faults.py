"""Fault injection: canned error answers (5xx, secondary and primary rate limits) that the simulator serves
to matching REST/GraphQL requests, one per request and in order, before normal service resumes.

    sim.inject_faults("GET", r"/repos/o/r/issues/\\d+", [Fault.bad_gateway(), Fault.service_unavailable()])
    sim.inject_faults("*", r"/repos/.*", [Fault.primary_rate_limit(reset=time.time() + 3600)])

Paths are matched (``re.fullmatch``) like the call log's: REST paths without ``/api/v3``, GraphQL as
``/graphql``. Answers served this way are in ``sim.calls`` with ``injected=True``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RATE_LIMIT_DOCS = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)
BAD_GATEWAY_HTML = """<!DOCTYPE html>
<html>
  <head><meta charset="utf-8"><title>Server Error &middot; GitHub</title></head>
  <body>
    <div class="container">
      <h1>502 Bad Gateway</h1>
      <p>We didn't receive a timely response from the upstream server.</p>
    </div>
  </body>
</html>
"""


def _request_id() -> str:
    return f"{int(time.time() * 1000) % 0xFFFFFFFF:08X}:SIM"


@dataclass
class Fault:
    """One canned answer. ``body``: a dict/list is sent as JSON, a str as HTML (``<...``) or plain text."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def render(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The body and raw ASGI headers of this answer."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.body is None:
            content = b""
            default_type = "text/plain; charset=utf-8"
        elif isinstance(self.body, str | bytes):
            content = self.body.encode() if isinstance(self.body, str) else self.body
            default_type = (
                "text/html; charset=utf-8"
                if content.lstrip().startswith(b"<")
                else "text/plain; charset=utf-8"
            )
        else:
            content = json.dumps(self.body).encode()
            default_type = "application/json; charset=utf-8"
        headers.setdefault("content-type", default_type)
        headers["content-length"] = str(len(content))
        headers.setdefault("x-github-request-id", _request_id())
        return content, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    # --- GitHub's answers -------------------------------------------------------------------------------
    @classmethod
    def bad_gateway(cls) -> Fault:
        """502 with GitHub's HTML error page."""
        return cls(502, {}, BAD_GATEWAY_HTML)

    @classmethod
    def service_unavailable(cls) -> Fault:
        """503 with a JSON body, as the API answers while a service is degraded."""
        return cls(
            503, {}, {"message": "Service Unavailable", "documentation_url": "https://www.githubstatus.com"}
        )

    @classmethod
    def gateway_timeout(cls) -> Fault:
        """504: GitHub gave up on a slow request (the effect may or may not have happened)."""
        return cls(504, {}, {"message": "We couldn't respond to your request in time. Sorry about that."})

    @classmethod
    def secondary_rate_limit(cls, retry_after: int | None = 60, status: int = 403) -> Fault:
        """403 (or 429) "You have exceeded a secondary rate limit", with ``retry-after`` unless None."""
        headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4990", "x-ratelimit-used": "10"}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        request_id = _request_id()
        headers["x-github-request-id"] = request_id
        body = {
            "message": SECONDARY_MESSAGE.format(request_id=request_id),
            "documentation_url": f"{RATE_LIMIT_DOCS}#about-secondary-rate-limits",
            "status": str(status),
        }
        return cls(status, headers, body)

    @classmethod
    def too_many_requests(cls, retry_after: int | None = 60) -> Fault:
        """429 for a secondary rate limit."""
        return cls.secondary_rate_limit(retry_after, status=429)

    @classmethod
    def primary_rate_limit(
        cls,
        reset: float | datetime,
        installation_id: int | None = None,
        limit: int = 5000,
        resource: str = "core",
    ) -> Fault:
        """403 with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` (epoch seconds of ``reset``)."""
        epoch = int(reset.timestamp() if isinstance(reset, datetime) else reset)
        who = f" for installation ID {installation_id}" if installation_id is not None else ""
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": str(limit),
            "x-ratelimit-reset": str(epoch),
            "x-ratelimit-resource": resource,
        }
        body = {
            "message": f"API rate limit exceeded{who}.",
            "documentation_url": f"{RATE_LIMIT_DOCS}#exceeding-the-rate-limit",
            "status": "403",
        }
        return cls(403, headers, body)


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    faults: deque[Fault]


class FaultInjector:
    """Rules in registration order: a request takes the next fault of the first matching rule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def add(self, method: str, path_regex: str, faults: list[Fault]) -> None:
        rule = _Rule(method.upper(), re.compile(path_regex), deque(faults))
        with self._lock:
            self._rules.append(rule)

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.faults and rule.method in ("*", method.upper()) and rule.pattern.fullmatch(path):
                    fault = rule.faults.popleft()
                    self._rules = [r for r in self._rules if r.faults]
                    return fault
        return None

    def pending(self) -> int:
        with self._lock:
            return sum(len(r.faults) for r in self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
