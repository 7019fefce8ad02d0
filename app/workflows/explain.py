"""Failures in plain words for the status comment (deterministic)."""

from __future__ import annotations

import re

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from app.contracts.failures import FailureKind

_GITHUB_ANSWER = re.compile(r"Response\((\d{3}) ([^,)]*)")


def explain(error: BaseException) -> str:
    cause: BaseException | None = error
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        if cause.type == FailureKind.OUTAGE:
            return (
                f"{cause.message}, and it did not come back before the run's deadline (the setting "
                "`OTTO_OUTAGE_DEADLINE_S`); nothing more was done. Work already pushed stays on its branch"
            )
        answer = _GITHUB_ANSWER.search(cause.message)
        if answer:  # githubkit's RequestFailed says only "Response(422 Unprocessable Entity, ...)"
            return f"GitHub refused a request Otto made: {answer.group(1)} {answer.group(2).strip()}"
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
