"""Failures in plain words for the status comment (deterministic)."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError, TimeoutType


def explain(error: BaseException) -> str:
    cause: BaseException | None = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, CancelledError):
        return "stopped before it finished; nothing more is pushed"
    if isinstance(cause, TimeoutError):
        if cause.type == TimeoutType.HEARTBEAT:
            return (
                "the worker running this step stopped (it crashed or was killed) and the retry did not finish"
            )
        return "A step took longer than its time limit and was stopped."
    if cause is None:
        return "An unknown error stopped the run."
    return f"{type(cause).__name__}: {cause}"
