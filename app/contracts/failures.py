"""The kinds of failure an activity raises (``ApplicationError.type``) and what the workflows do with them."""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    BUDGET_EXHAUSTED = "BudgetExhausted"  # the next model call could exceed what is left of the budget
    WORKSPACE = "WorkspaceError"  # git failed (redacted message)
    MODEL = "ModelError"  # the model API failed after the client's retries
    INVALID_PLAN = "InvalidPlan"  # the planner's answer failed validation twice
    INVALID_MODEL_OUTPUT = "InvalidModelOutput"  # an answer that can't be read
    PILOT_FAILED = "PilotFailed"
    STOPPED = "Stopped"  # the run was stopped: nothing more is pushed
    SANDBOX_UNAVAILABLE = "SandboxUnavailable"  # no sandbox on this worker: no task can run (fail closed)
    RATE_LIMITED = "RateLimited"  # GitHub asked for a long wait: the workflow sleeps on a durable timer
    UNKNOWN_INSTALLATION = "UnknownInstallation"  # the App is not (or no longer) installed there
    INSTALLATION_SUSPENDED = "InstallationSuspended"  # installed, but suspended: GitHub refuses its tokens
    OUTAGE = "Outage"  # GitHub, git's remote or the model down, the disk full: the workflow waits it out


# Retrying these can't help: the same input fails the same way (or must not run again).
NON_RETRYABLE: list[str] = [
    FailureKind.INVALID_PLAN,
    FailureKind.INVALID_MODEL_OUTPUT,
    FailureKind.MODEL,
    FailureKind.WORKSPACE,
    FailureKind.PILOT_FAILED,
    FailureKind.STOPPED,
    FailureKind.SANDBOX_UNAVAILABLE,
    FailureKind.UNKNOWN_INSTALLATION,
    FailureKind.INSTALLATION_SUSPENDED,
]

# The App can't act for the installation at all (nothing can be read or posted there): runs end quietly.
INSTALLATION_UNAVAILABLE: frozenset[str] = frozenset(
    {FailureKind.UNKNOWN_INSTALLATION, FailureKind.INSTALLATION_SUSPENDED}
)
