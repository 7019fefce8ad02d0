"""Calling GitHub activities from workflows so that a long rate-limit wait is a durable timer.

``await github(GitHubActivities.load_issue, LoadIssueInput(...))`` runs the activity (options ``GITHUB``
unless given); when it fails with ``ApplicationError(type="RateLimited", details=[wait_s, guessed])``
(see ``app.github_retry``) the workflow sleeps ``wait_s`` on a Temporal timer, with no worker busy and
surviving restarts, and calls again, a bounded number of times. Any other failure is raised unchanged.
Deterministic: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from app.github_retry import RATE_LIMITED
    from app.workflows.options import GITHUB

A = TypeVar("A")
R = TypeVar("R")

MAX_RATE_LIMIT_WAITS = 5  # then the RateLimited failure reaches the caller like any other
MIN_WAIT = timedelta(seconds=1)
MAX_WAIT = timedelta(hours=2)  # a primary limit resets within the hour; anything longer is suspicious


def rate_limit_wait(error: BaseException) -> tuple[timedelta, bool] | None:
    """(wait, guessed) when ``error`` is an activity's RateLimited failure, else None."""
    cause = error.cause if isinstance(error, ActivityError) else error
    if not isinstance(cause, ApplicationError) or cause.type != RATE_LIMITED:
        return None
    details = list(cause.details)
    try:
        wait_s = float(details[0])
    except (IndexError, TypeError, ValueError):
        wait_s = 60.0
    guessed = bool(details[1]) if len(details) > 1 else False
    return timedelta(seconds=wait_s), guessed


async def github(
    activity: Callable[[Any, A], Awaitable[R]],
    arg: A,
    *,
    max_waits: int = MAX_RATE_LIMIT_WAITS,
    **options: Any,
) -> R:
    """``workflow.execute_activity_method(activity, arg, **options)``, waiting out GitHub's rate limits
    on durable timers (at most ``max_waits`` times; guessed waits double on each repeat)."""
    opts = options or GITHUB
    waits = 0
    while True:
        try:
            result: R = await workflow.execute_activity_method(activity, arg, **opts)
            return result
        except ActivityError as e:
            limited = rate_limit_wait(e)
            if limited is None or waits >= max_waits:
                raise
            wait, guessed = limited
            if guessed:
                wait *= 2**waits
            wait = min(MAX_WAIT, max(MIN_WAIT, wait))
            waits += 1
            name = getattr(activity, "__name__", "activity")
            workflow.logger.info("GitHub rate limit in %s: waiting %s on a durable timer", name, wait)
            await workflow.sleep(wait, summary=f"GitHub rate limit: {name} again in {wait}")
