"""Outages on the activity side: GitHub's 5xx and unreachable API, git's remote failing under a push or fetch,
the model overloaded or down, the worker's disk full — each leaves its activity as one kind of failure,
``ApplicationError(type="Outage", details=[usage, service, detail])``, that the workflows wait out on durable
timers (``app.workflows.calls.outlast``) instead of failing the run. The words are for people: what is down,
how (``502``, ``529 overloaded_error``), never an exception's repr."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import httpx
from githubkit.exception import RequestError, RequestFailed, RequestTimeout
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from app.contracts.failures import FailureKind
from app.domain.outages import Service, http_outage, local_outage
from app.domain.usage import Usage

log = logging.getLogger("otto.outages")

P = ParamSpec("P")
R = TypeVar("R")


class Outage(Exception):
    """A service Otto needs is not answering (or the worker is out of disk): try again later."""

    def __init__(self, service: str, detail: str, message: str = "") -> None:
        self.service = service
        self.detail = detail
        super().__init__(message or f"{service} is not available ({detail})")

    def failure(self, usage: Usage | None = None, *, retryable: bool = True) -> ApplicationError:
        """As the activity's failure. ``retryable``: Temporal's retry policy tries again a few times first
        (short blips pass unseen); either way the workflow then waits the outage out."""
        return ApplicationError(
            str(self),
            (usage or Usage()).model_dump(),
            self.service,
            self.detail,
            type=FailureKind.OUTAGE,
            non_retryable=not retryable,
            category=ApplicationErrorCategory.BENIGN,  # expected and handled: no error log, no traceback
        )


def github_outage(exc: BaseException) -> Outage | None:
    """GitHub answering 5xx, timing out or unreachable (githubkit's or httpx's errors), else None."""
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        return Outage(Service.GITHUB, str(status)) if status >= 500 else None
    if isinstance(exc, RequestTimeout):
        return Outage(Service.GITHUB, "timed out")
    if isinstance(exc, RequestError):
        return Outage(Service.GITHUB, "unreachable")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return Outage(Service.GITHUB, str(status)) if http_outage(status) and status != 429 else None
    if isinstance(exc, httpx.TimeoutException):
        return Outage(Service.GITHUB, "timed out")
    if isinstance(exc, httpx.TransportError):
        return Outage(Service.GITHUB, "unreachable")
    return None


def as_outage(exc: BaseException) -> Outage | None:
    """Any outage behind ``exc``: an :class:`Outage` raised below, GitHub's, or the disk/file descriptors."""
    if isinstance(exc, Outage):
        return exc
    found = github_outage(exc)
    if found is not None:
        return found
    local = local_outage(exc)
    if local is not None:
        return Outage(local[0], local[1])
    return None


def outages_are_waited_out(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """For activities: an outage leaves as the Outage failure (logged once, at INFO, without a traceback)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ApplicationError:
            raise
        except Exception as e:
            outage = as_outage(e)
            if outage is None:
                raise
            log.info("%s: %s; the workflow will try again", fn.__name__, outage)
            raise outage.failure() from None

    return wrapper
