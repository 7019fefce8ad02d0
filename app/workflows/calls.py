"""How workflows call activities: by their declared spec (``app.contracts.activities``), never by importing
an implementation; GitHub calls wait out rate limits on durable timers.

``await call(spec, arg)`` runs the activity with the spec's options on its queue's task queue (names from
the run's limits; the main queue is the workflow's own). ``await github(spec, arg)`` does the same and, when
the activity fails with ``ApplicationError(type="RateLimited", details=[wait_s, guessed])`` (see
``app.github_retry``), sleeps ``wait_s`` on a Temporal timer — no worker busy, surviving restarts — and calls
again, a bounded number of times. Deterministic: no I/O, no clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from app.contracts.activities import ActivitySpec, Queue
    from app.contracts.failures import FailureKind
    from app.contracts.messages import RunLimits

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741

MAX_RATE_LIMIT_WAITS = 5  # then the RateLimited failure reaches the caller like any other
MIN_WAIT = timedelta(seconds=1)
MAX_WAIT = timedelta(hours=2)  # a primary limit resets within the hour; anything longer is suspicious


def task_queue(spec: ActivitySpec[Any, Any], limits: RunLimits | None) -> str:
    own = workflow.info().task_queue
    if limits is None or spec.queue == Queue.MAIN:
        return own
    name = limits.model_task_queue if spec.queue == Queue.MODEL else limits.cpu_task_queue
    return name or own


async def call(spec: ActivitySpec[I, O], arg: I, *, limits: RunLimits | None = None, **options: Any) -> O:
    """Run the activity ``spec`` names with ``arg``; ``options`` override the spec's call options."""
    result = await workflow.execute_activity(
        spec.name,
        arg,
        result_type=spec.output,
        task_queue=task_queue(spec, limits),
        **{**spec.options, **options},
    )
    return cast(O, result)


def rate_limit_wait(error: BaseException) -> tuple[timedelta, bool] | None:
    """(wait, guessed) when ``error`` is an activity's RateLimited failure, else None."""
    cause = error.cause if isinstance(error, ActivityError) else error
    if not isinstance(cause, ApplicationError) or cause.type != FailureKind.RATE_LIMITED:
        return None
    details = list(cause.details)
    try:
        wait_s = float(details[0])
    except (IndexError, TypeError, ValueError):
        wait_s = 60.0
    guessed = bool(details[1]) if len(details) > 1 else False
    return timedelta(seconds=wait_s), guessed


async def github(spec: ActivitySpec[I, O], arg: I, *, max_waits: int = MAX_RATE_LIMIT_WAITS) -> O:
    """:func:`call`, waiting out GitHub's rate limits on durable timers (at most ``max_waits`` times;
    guessed waits double on each repeat)."""
    waits = 0
    while True:
        try:
            return await call(spec, arg)
        except ActivityError as e:
            limited = rate_limit_wait(e)
            if limited is None or waits >= max_waits:
                raise
            wait, guessed = limited
            if guessed:
                wait *= 2**waits
            wait = min(MAX_WAIT, max(MIN_WAIT, wait))
            waits += 1
            workflow.logger.info("GitHub rate limit in %s: waiting %s on a durable timer", spec.name, wait)
            await workflow.sleep(wait, summary=f"GitHub rate limit: {spec.name} again in {wait}")
