"""Timeouts and retry policies for the activities the workflows call (deterministic constants)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

NON_RETRYABLE = [
    "InvalidPlan",
    "InvalidModelOutput",
    "ModelError",
    "WorkspaceError",
    "PilotFailed",
    "Stopped",
    "SandboxUnavailable",
]

GITHUB: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=6,
    ),
}

MODEL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=15),
    "retry_policy": RetryPolicy(maximum_attempts=2, non_retryable_error_types=NON_RETRYABLE),
}

GIT: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(maximum_attempts=3, non_retryable_error_types=NON_RETRYABLE),
}


def explain(error: BaseException) -> str:
    """A failure in plain words for the status comment."""
    cause: BaseException | None = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, CancelledError):
        return "stopped before it finished; nothing more is pushed"
    if isinstance(cause, TimeoutError):
        return "A step took longer than its time limit and was stopped."
    if cause is None:
        return "An unknown error stopped the run."
    return f"{type(cause).__name__}: {cause}"
