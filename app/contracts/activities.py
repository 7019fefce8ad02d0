"""Every activity declared once: its name, the task queue it runs on, its input and output types and how
it is called (timeouts, retries). Workflows call activities by these specs (no import of an
implementation); workers register implementations under the same names and on the same queues.

Queues: ``MAIN`` (workflows and short GitHub/Temporal calls), ``MODEL`` (waiting on the model), ``CPU``
(the agent and the repository's checks: CPU, disk and git). Their names come from settings
(``OTTO_TASK_QUEUE``, ``OTTO_MODEL_TASK_QUEUE``, ``OTTO_CPU_TASK_QUEUE``), carried into runs by
:class:`~app.contracts.messages.RunLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from temporalio.common import RetryPolicy

from app.contracts.failures import NON_RETRYABLE
from app.contracts.io import (
    BranchInput,
    CiQuery,
    ClassifyResult,
    CloseIssueInput,
    CommentReaction,
    Delivered,
    GateInput,
    InstallationQuery,
    InstallationStatus,
    LinkedQuery,
    ListFilesInput,
    LoadedIssue,
    LoadIssueInput,
    MergeInput,
    MergeOutcome,
    ModelInput,
    PermissionQuery,
    PilotInput,
    PilotResult,
    PlanResult,
    PublishStatus,
    ReactInput,
    RebaseInput,
    Refusal,
    ReplanInput,
    ReplyInput,
    RepoFiles,
    RepositoryAccess,
    RepositoryQuery,
    RetargetInput,
    RevertInput,
    RevertOutcome,
    ReviewQuery,
    SignalInput,
    StoppedRuns,
    StopRuns,
    TaskInput,
    TaskPull,
    TaskPullQuery,
    TaskPullsQuery,
    TaskResult,
    VerifyHeadInput,
    VerifyHeadResult,
)
from app.contracts.messages import StartRun
from app.domain.linking import LinkedStatus

I = TypeVar("I")  # noqa: E741 - input
O = TypeVar("O")  # noqa: E741 - output


class Queue(StrEnum):
    MAIN = "main"
    MODEL = "model"
    CPU = "cpu"


# A few quick tries for a blip (a worker lost mid-call, a 5xx githubkit's own retries didn't outlast); a
# longer outage comes back to the workflow as the Outage failure, which it waits out visibly (calls.outlast)
GITHUB_CALL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=3,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}
MODEL_CALL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=15),
    "retry_policy": RetryPolicy(maximum_attempts=2, non_retryable_error_types=NON_RETRYABLE),
}
LIFECYCLE_CALL: dict[str, Any] = {  # visits every active run: rare, and may take a while
    "start_to_close_timeout": timedelta(minutes=5),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=6,
        non_retryable_error_types=NON_RETRYABLE,
    ),
}
GIT_CALL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(maximum_attempts=3, non_retryable_error_types=NON_RETRYABLE),
}


@dataclass(frozen=True)
class ActivitySpec(Generic[I, O]):
    name: str
    queue: Queue
    input: type[I]
    output: Any  # the result type (a class, a union or None), for the data converter
    options: dict[str, Any] = field(default_factory=dict)


# --- GitHub (main queue) ------------------------------------------------------------------------------
CHECK_PERMISSION: ActivitySpec[PermissionQuery, str] = ActivitySpec(
    "check_permission", Queue.MAIN, PermissionQuery, str, GITHUB_CALL
)
REACT_TO_ISSUE: ActivitySpec[ReactInput, None] = ActivitySpec(
    "react_to_issue", Queue.MAIN, ReactInput, None, GITHUB_CALL
)
# one comment edit: quick, and often (a task's stage); a worker dying mid-edit must not hold the next ones
# (they queue behind it) for long, so a short timeout and another try
PUBLISH_STATUS: ActivitySpec[PublishStatus, int] = ActivitySpec(
    "publish_status",
    Queue.MAIN,
    PublishStatus,
    int,
    {**GITHUB_CALL, "start_to_close_timeout": timedelta(seconds=15)},
)
POST_REFUSAL: ActivitySpec[Refusal, int] = ActivitySpec("post_refusal", Queue.MAIN, Refusal, int, GITHUB_CALL)
REACT_TO_COMMENT: ActivitySpec[CommentReaction, None] = ActivitySpec(
    "react_to_comment", Queue.MAIN, CommentReaction, None, GITHUB_CALL
)
REPLY: ActivitySpec[ReplyInput, int] = ActivitySpec("reply", Queue.MAIN, ReplyInput, int, GITHUB_CALL)
RESOLVE_TASK_PULL: ActivitySpec[TaskPullQuery, TaskPull | None] = ActivitySpec(
    "resolve_task_pull", Queue.MAIN, TaskPullQuery, TaskPull | None, GITHUB_CALL
)
LINKED_REPOSITORIES: ActivitySpec[LinkedQuery, list[LinkedStatus]] = ActivitySpec(
    "linked_repositories", Queue.MAIN, LinkedQuery, list[LinkedStatus], GITHUB_CALL
)
LIST_TASK_PULLS: ActivitySpec[TaskPullsQuery, list[TaskPull]] = ActivitySpec(
    "list_task_pulls", Queue.MAIN, TaskPullsQuery, list[TaskPull], GITHUB_CALL
)
PULL_MERGEABLE: ActivitySpec[TaskPullQuery, bool | None] = ActivitySpec(
    "pull_mergeable", Queue.MAIN, TaskPullQuery, bool | None, GITHUB_CALL
)
MERGE_TASK_PULL: ActivitySpec[MergeInput, MergeOutcome] = ActivitySpec(
    "merge_task_pull", Queue.MAIN, MergeInput, MergeOutcome, GITHUB_CALL
)
CLOSE_ISSUE: ActivitySpec[CloseIssueInput, None] = ActivitySpec(
    "close_issue", Queue.MAIN, CloseIssueInput, None, GITHUB_CALL
)
RETARGET_PULL: ActivitySpec[RetargetInput, None] = ActivitySpec(
    "retarget_pull", Queue.MAIN, RetargetInput, None, GITHUB_CALL
)
DELETE_BRANCH: ActivitySpec[BranchInput, None] = ActivitySpec(
    "delete_branch", Queue.MAIN, BranchInput, None, GITHUB_CALL
)
REVIEW_GUIDANCE: ActivitySpec[ReviewQuery, str] = ActivitySpec(
    "review_guidance", Queue.MAIN, ReviewQuery, str, GITHUB_CALL
)
CI_REPORT: ActivitySpec[CiQuery, str] = ActivitySpec("ci_report", Queue.MAIN, CiQuery, str, GITHUB_CALL)
LOAD_ISSUE: ActivitySpec[LoadIssueInput, LoadedIssue] = ActivitySpec(
    "load_issue", Queue.MAIN, LoadIssueInput, LoadedIssue, GITHUB_CALL
)

# --- Temporal-side intake (main queue) ------------------------------------------------------------------
START_OR_SIGNAL_RUN: ActivitySpec[StartRun, str] = ActivitySpec(
    "start_or_signal_run", Queue.MAIN, StartRun, str, GITHUB_CALL
)
SIGNAL_RUN: ActivitySpec[SignalInput, Delivered] = ActivitySpec(
    "signal_run", Queue.MAIN, SignalInput, Delivered, GITHUB_CALL
)
GATE: ActivitySpec[GateInput, None] = ActivitySpec("gate", Queue.MAIN, GateInput, None, GITHUB_CALL)

# --- installation lifecycle (main queue): the App uninstalled, suspended, repositories removed ---------
INSTALLATION_STATUS: ActivitySpec[InstallationQuery, InstallationStatus] = ActivitySpec(
    "installation_status", Queue.MAIN, InstallationQuery, InstallationStatus, GITHUB_CALL
)
REPOSITORY_ACCESS: ActivitySpec[RepositoryQuery, RepositoryAccess] = ActivitySpec(
    "repository_access", Queue.MAIN, RepositoryQuery, RepositoryAccess, GITHUB_CALL
)
STOP_RUNS: ActivitySpec[StopRuns, StoppedRuns] = ActivitySpec(
    "stop_runs", Queue.MAIN, StopRuns, StoppedRuns, LIFECYCLE_CALL
)

# --- the model ---------------------------------------------------------------------------------------------
CLASSIFY: ActivitySpec[ModelInput, ClassifyResult] = ActivitySpec(
    "classify", Queue.MODEL, ModelInput, ClassifyResult, MODEL_CALL
)
PLAN: ActivitySpec[ModelInput, PlanResult] = ActivitySpec(
    "plan", Queue.MODEL, ModelInput, PlanResult, MODEL_CALL
)
PILOT: ActivitySpec[PilotInput, PilotResult] = ActivitySpec(
    "pilot", Queue.MODEL, PilotInput, PilotResult, MODEL_CALL
)
REPLAN: ActivitySpec[ReplanInput, PlanResult] = ActivitySpec(
    "replan", Queue.MODEL, ReplanInput, PlanResult, MODEL_CALL
)

# --- tasks: git, the agent, the checks (CPU queue) ------------------------------------------------
LIST_REPO_FILES: ActivitySpec[ListFilesInput, RepoFiles] = ActivitySpec(
    "list_repo_files", Queue.CPU, ListFilesInput, RepoFiles, GIT_CALL
)
REVERT_MERGE: ActivitySpec[RevertInput, RevertOutcome] = ActivitySpec(
    "revert_merge", Queue.CPU, RevertInput, RevertOutcome, GIT_CALL
)
REBASE_BRANCH: ActivitySpec[RebaseInput, str | None] = ActivitySpec(
    "rebase_branch", Queue.CPU, RebaseInput, str | None, GIT_CALL
)
# a person's push to a task branch: the repository's checks on that head, and its `otto/verify` check run
VERIFY_HEAD: ActivitySpec[VerifyHeadInput, VerifyHeadResult] = ActivitySpec(
    "verify_head",
    Queue.CPU,
    VerifyHeadInput,
    VerifyHeadResult,
    {**GIT_CALL, "start_to_close_timeout": timedelta(hours=1), "heartbeat_timeout": timedelta(minutes=2)},
)
# timeouts per run (RunLimits): start-to-close, heartbeat; see app.workflows.run.execution
EXECUTE_TASK: ActivitySpec[TaskInput, TaskResult] = ActivitySpec(
    "execute_task", Queue.CPU, TaskInput, TaskResult
)

ALL: tuple[ActivitySpec[Any, Any], ...] = (
    CHECK_PERMISSION,
    REACT_TO_ISSUE,
    PUBLISH_STATUS,
    POST_REFUSAL,
    REACT_TO_COMMENT,
    REPLY,
    RESOLVE_TASK_PULL,
    LIST_TASK_PULLS,
    PULL_MERGEABLE,
    LINKED_REPOSITORIES,
    MERGE_TASK_PULL,
    CLOSE_ISSUE,
    RETARGET_PULL,
    DELETE_BRANCH,
    REVIEW_GUIDANCE,
    CI_REPORT,
    LOAD_ISSUE,
    START_OR_SIGNAL_RUN,
    SIGNAL_RUN,
    GATE,
    INSTALLATION_STATUS,
    REPOSITORY_ACCESS,
    STOP_RUNS,
    CLASSIFY,
    PLAN,
    PILOT,
    REPLAN,
    LIST_REPO_FILES,
    REBASE_BRANCH,
    REVERT_MERGE,
    VERIFY_HEAD,
    EXECUTE_TASK,
)
BY_NAME: dict[str, ActivitySpec[Any, Any]] = {spec.name: spec for spec in ALL}
