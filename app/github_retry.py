"""GitHub's transient failures, survived with backoff that honours its headers (githubkit ``auto_retry``).

- 502/503/504: retried in process with exponential backoff (0.5 s, 1 s, 2 s), for every method but POST: a
  POST that timed out behind GitHub's front end may well have been applied, and repeating it blindly could
  post a second comment or PR. A failed POST surfaces to its activity, whose Temporal retry starts again
  from the activity's look-before-you-create. (POSTs that are repeatable by nature are retried in process
  too: installation tokens, and reactions, where GitHub answers the existing one.)
- Secondary rate limits (403/429 with ``retry-after``, or GitHub's "secondary rate limit" message, or a
  bare 429): wait ``retry-after`` seconds, or 60 s (doubling on repeats) when GitHub gives none.
- Primary rate limits (``x-ratelimit-remaining: 0``): wait until ``x-ratelimit-reset``, measured against
  the answer's ``Date`` header so that the worker's clock doesn't matter.

A rate-limit wait no longer than ``max_inline_wait_s`` (setting ``OTTO_GITHUB_MAX_INLINE_WAIT_S``) is slept
in process by githubkit; a longer one raises ``RateLimited(wait_s)`` instead of parking the worker. The
activities turn that into a non-retryable ``ApplicationError`` of type ``RateLimited`` (``as_activity_error``)
and the workflow waits with a durable timer (``app.workflows.calls.github``).
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ParamSpec, TypeVar

import httpx
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed
from githubkit.retry import RetryOption
from temporalio.exceptions import ApplicationError

from app.outages import outages_are_waited_out

RATE_LIMITED = "RateLimited"  # the ApplicationError type the workflows recognise
SERVER_ERRORS = frozenset({502, 503, 504})
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
REPEATABLE_POSTS = re.compile(r"(?:/app/installations/\d+/access_tokens|/reactions)$")
SECONDARY_DEFAULT_WAIT_S = 60.0  # GitHub: "wait for at least one minute" when no header says how long
RESET_MARGIN_S = 1.0  # x-ratelimit-reset has one-second resolution: don't arrive a moment early
MIN_WAIT_S = 0.01  # githubkit treats a zero timedelta as "no advice" and sleeps 60 s

P = ParamSpec("P")
R = TypeVar("R")


class RateLimited(Exception):
    """GitHub asked for a wait longer than a worker should sleep; retry the call after ``wait_s``.

    ``guessed``: GitHub gave no header, the wait is the documented minimum and should grow on repeats.
    """

    def __init__(self, wait_s: float, kind: str, message: str = "", *, guessed: bool = False) -> None:
        self.wait_s = wait_s
        self.kind = kind  # "primary" | "secondary"
        self.guessed = guessed
        self.message = message
        text = f"GitHub {kind} rate limit: retry in {math.ceil(wait_s)} s"
        super().__init__(f"{text} ({message})" if message else text)

    def as_activity_error(self) -> ApplicationError:
        """``ApplicationError(type="RateLimited", details=[wait_s, guessed], non_retryable=True)``."""
        return ApplicationError(str(self), self.wait_s, self.guessed, type=RATE_LIMITED, non_retryable=True)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("message") or "") if isinstance(data, dict) else ""


def _answered_at(response: httpx.Response) -> float:
    """When GitHub answered, by its own clock (``Date``), else by ours."""
    date = response.headers.get("date")
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def _retry_after_s(value: str, response: httpx.Response) -> float | None:
    """``retry-after``: delay-seconds (GitHub's form) or an HTTP date."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - _answered_at(response))
    except (TypeError, ValueError):
        return None


def rate_limit_of(exc: BaseException) -> RateLimited | None:
    """The wait a rate-limited answer asks for (as a ``RateLimited``), or None if ``exc`` isn't one."""
    if not isinstance(exc, RequestFailed):
        return None
    response = exc.response.raw_response
    status = response.status_code
    headers = response.headers
    if status not in (403, 429) and not isinstance(exc, RateLimitExceeded):
        return None
    message = _message(response)
    if "retry-after" in headers:
        wait = _retry_after_s(headers["retry-after"], response)
        if wait is not None:
            return RateLimited(wait, "secondary", message)
    secondary = "secondary rate limit" in message.lower()
    exhausted = headers.get("x-ratelimit-remaining") == "0"
    kind = "primary" if exhausted and not secondary else "secondary"
    reset = headers.get("x-ratelimit-reset", "").strip()
    if exhausted and reset.isdigit():  # GitHub's advice: then wait until the reset, whatever the message
        wait = max(0.0, int(reset) - _answered_at(response)) + RESET_MARGIN_S
        return RateLimited(wait, kind, message)
    if exhausted or secondary or status == 429:
        return RateLimited(SECONDARY_DEFAULT_WAIT_S, kind, message, guessed=True)
    if isinstance(exc, RateLimitExceeded):  # e.g. GraphQL's RATE_LIMITED error in a 200 answer
        return RateLimited(max(0.0, exc.retry_after.total_seconds()), "primary", message)
    return None  # a 403 that isn't a rate limit (permissions, blocked, ...)


def _repeatable(request: httpx.Request) -> bool:
    """Whether sending ``request`` twice has the effect of sending it once."""
    method = request.method.upper()
    if method in REPEATABLE_METHODS:
        return True
    return method == "POST" and REPEATABLE_POSTS.search(request.url.path.rstrip("/")) is not None


@dataclass(frozen=True)
class GitHubRetry:
    """githubkit ``RetryDecisionFunc``: ``GitHub(..., auto_retry=GitHubRetry(...))``."""

    max_inline_wait_s: float = 10.0
    rate_limit_retries: int = 2  # in-process waits per request before handing over to the workflow
    server_error_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        limited = rate_limit_of(exc)
        if limited is not None:
            if limited.guessed:
                limited.wait_s *= 2**retry_count
            if limited.wait_s <= self.max_inline_wait_s and retry_count < self.rate_limit_retries:
                return RetryOption(True, timedelta(seconds=max(MIN_WAIT_S, limited.wait_s)))
            raise limited from exc
        if (
            isinstance(exc, RequestFailed)
            and exc.response.status_code in SERVER_ERRORS
            and _repeatable(exc.request)
            and retry_count < self.server_error_retries
        ):
            delay = min(self.max_backoff_s, self.backoff_s * 2**retry_count)
            return RetryOption(True, timedelta(seconds=max(MIN_WAIT_S, delay)))
        return RetryOption(False)


def durable_rate_limits(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """For activities: a long rate-limit wait leaves as ``ApplicationError(type="RateLimited")`` so that the
    workflow sleeps on a durable timer (GraphQL's rate limits, raised outside ``auto_retry``, too); an outage
    (GitHub's 5xx after the in-process retries, GitHub unreachable, the disk full) as the ``Outage`` failure
    the workflow waits out (``app.outages``)."""

    @outages_are_waited_out
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except RateLimited as e:
            raise e.as_activity_error() from e
        except RateLimitExceeded as e:
            limited = rate_limit_of(e)
            if limited is None:
                raise
            raise limited.as_activity_error() from e

    return wrapper
