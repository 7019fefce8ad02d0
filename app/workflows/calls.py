"""How workflows call activities: by their declared spec (``app.contracts.activities``), never by importing
an implementation; GitHub calls wait out rate limits on durable timers, and every call that goes through
:func:`outlast` waits out outages the same way.

``await call(spec, arg)`` runs the activity with the spec's options on its queue's task queue (names from
the run's limits; the main queue is the workflow's own). ``await github(spec, arg)`` does the same and, when
the activity fails with ``ApplicationError(type="RateLimited", details=[wait_s, guessed])`` (see
``app.github_retry``), sleeps ``wait_s`` on a Temporal timer — no worker busy, surviving restarts — and calls
again, a bounded number of times.

``await outlast(lambda: call(...), patience, step)``: when the activity fails with the ``Outage`` failure
(``app.outages``: GitHub, git's remote or the model down, the disk full), wait on a durable timer — the first
wait ``first_wait_s``, doubling up to ``max_wait_s`` — and call again, until the patience's deadline; then the
failure reaches the caller. :class:`Patience` tells someone while it waits (the run: its status comment and
Mission Control) and when the service is back. Deterministic: no I/O, no clock but the workflow's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from app.contracts.activities import ActivitySpec, Queue
    from app.contracts.failures import FailureKind
    from app.contracts.messages import OUTAGE_MEMO, OutagePolicy, RunLimits
    from app.domain.outages import Waiting, backoff_s

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


Hook = Callable[[Waiting], Awaitable[None]]


@dataclass
class Patience:
    """How long and how a workflow waits out an outage, and whom it tells."""

    policy: OutagePolicy
    began: datetime  # the deadline counts from here
    on_wait: Hook | None = None  # before each wait: what is down, since when
    on_back: Hook | None = None  # the call went through after waiting

    @property
    def deadline(self) -> datetime:
        return self.began + timedelta(seconds=self.policy.deadline_s)


def default_patience() -> Patience:
    """A delivery's: its policy from its memo (Otto's settings when it was accepted), from its start."""
    memo = workflow.memo_value(OUTAGE_MEMO, None, type_hint=dict)
    policy = OutagePolicy.model_validate(memo) if isinstance(memo, dict) else OutagePolicy()
    return Patience(policy, workflow.info().start_time)


def outage_of(error: BaseException) -> tuple[str, str] | None:
    """(service, detail) when ``error`` is an activity's Outage failure, else None."""
    cause = error.cause if isinstance(error, ActivityError) else error
    if not isinstance(cause, ApplicationError) or cause.type != FailureKind.OUTAGE:
        return None
    details = list(cause.details)
    service = str(details[1]) if len(details) > 1 else "a service Otto needs"
    detail = str(details[2]) if len(details) > 2 else "not answering"
    return service, detail


async def outlast(attempt: Callable[[], Awaitable[O]], patience: Patience, step: str = "") -> O:
    """``attempt()``, called again after durable waits while it fails with an outage (until the deadline)."""
    waiting: Waiting | None = None
    while True:
        try:
            result = await attempt()
        except ActivityError as e:
            found = outage_of(e)
            now = workflow.now()
            if found is None or now >= patience.deadline:
                raise
            service, detail = found
            if waiting is None or waiting.service != service:
                waiting = Waiting(service=service, detail=detail, since=now, step=step)
            else:
                waiting = waiting.model_copy(update={"detail": detail, "tries": waiting.tries + 1})
            if patience.on_wait is not None:
                await patience.on_wait(waiting)
            policy = patience.policy
            left = (patience.deadline - now).total_seconds()
            wait = max(1.0, min(backoff_s(waiting.tries, policy.first_wait_s, policy.max_wait_s), left))
            workflow.logger.info("%s: waiting %.0f s for %s (%s)", step, wait, service, detail)
            await workflow.sleep(timedelta(seconds=wait), summary=f"{waiting.headline()} ({step})")
            continue
        if waiting is not None and patience.on_back is not None:
            await patience.on_back(waiting)
        return result


async def github(
    spec: ActivitySpec[I, O],
    arg: I,
    *,
    max_waits: int = MAX_RATE_LIMIT_WAITS,
    patience: Patience | None = None,
    step: str = "",
) -> O:
    """:func:`call`, waiting out GitHub's rate limits on durable timers (at most ``max_waits`` times;
    guessed waits double on each repeat) and outages (:func:`outlast`; ``patience``: the delivery's when
    None)."""
    return await outlast(
        lambda: _rate_limited(spec, arg, max_waits), patience or default_patience(), step or spec.name
    )


async def _rate_limited(spec: ActivitySpec[I, O], arg: I, max_waits: int) -> O:
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
