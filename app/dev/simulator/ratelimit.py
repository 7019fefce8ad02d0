"""Primary rate-limit bookkeeping like GitHub's: per caller and resource, a fixed one-hour window that starts
with the caller's first counted request. Served by ``GET /rate_limit`` and the ``x-ratelimit-*`` headers of
every API answer. The simulator counts but never refuses (``Fault.primary_rate_limit`` does that)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

WINDOW_S = 3600
LIMITS = {"core": 5000, "graphql": 5000, "search": 30, "code_search": 10, "integration_manifest": 5000}
ANONYMOUS_LIMITS = {"core": 60, "graphql": 0, "search": 10, "code_search": 10, "integration_manifest": 5000}


@dataclass
class Window:
    reset: int
    used: int = 0


class RateLimits:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], Window] = {}

    @staticmethod
    def limit(actor: str, resource: str) -> int:
        table = ANONYMOUS_LIMITS if actor == "anonymous" else LIMITS
        return table.get(resource, LIMITS["core"])

    def _window(self, actor: str, resource: str, now: float) -> Window:
        key = (actor, resource)
        window = self._windows.get(key)
        if window is None or now >= window.reset:
            window = Window(reset=int(now) + WINDOW_S)
            self._windows[key] = window
        return window

    def count(self, actor: str, resource: str) -> None:
        with self._lock:
            self._window(actor, resource, time.time()).used += 1

    def status(self, actor: str, resource: str, pending: int = 0) -> dict[str, int]:
        """``{limit, used, remaining, reset}`` of a resource (``pending``: this request, uncounted)."""
        with self._lock:
            window = self._window(actor, resource, time.time())
            limit = self.limit(actor, resource)
            used = window.used + pending
            return {"limit": limit, "used": used, "remaining": max(0, limit - used), "reset": window.reset}

    def headers(self, actor: str, resource: str | None) -> list[tuple[bytes, bytes]]:
        """The ``x-ratelimit-*`` headers of an answer (``resource`` None: a request that is not counted)."""
        status = self.status(actor, resource or "core", pending=0 if resource is None else 1)
        values = {
            "x-ratelimit-limit": status["limit"],
            "x-ratelimit-remaining": status["remaining"],
            "x-ratelimit-reset": status["reset"],
            "x-ratelimit-used": status["used"],
        }
        out = [(k.encode(), str(v).encode()) for k, v in values.items()]
        return [*out, (b"x-ratelimit-resource", (resource or "core").encode())]
