"""What a run is: its inputs, its state (the workflow's memory) and the bounded results activities return."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.domain.commands import Command
from app.domain.pilot import PilotDecision
from app.domain.plan import PlannedTask
from app.domain.repo_config import RepoConfig
from app.domain.usage import Usage

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


class RepoRef(BaseModel):
    installation_id: int
    owner: str
    name: str
    repo_id: int

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def run_workflow_id(repo: RepoRef, issue_number: int) -> str:
    return f"otto/{repo.repo_id}/{issue_number}"


class Trigger(BaseModel):
    delivery_id: str
    sender: str
    label: str
    # the issue as it was in the `issues.labeled` payload (None: not carried, e.g. an older run's input)
    issue_title: str | None = None
    issue_body: str | None = None


class RunLimits(BaseModel):
    """Instance settings a run needs, carried in its input so the workflow stays deterministic."""

    model: str
    label: str = "otto"
    max_tasks: int = 8
    max_parallel_tasks: int = 2
    task_attempt_timeout_s: float = 3600.0
    heartbeat_timeout_s: float = 60.0
    max_pilot_retries: int = 1
    delete_merged_branches: bool = True
    budget_usd_default: float = 5.0
    budget_usd_max: float = 50.0
    model_task_queue: str | None = None  # None: the workflow's own queue
    cpu_task_queue: str | None = None
    temporal_ui_url: str | None = None


class RunInput(BaseModel):
    repo: RepoRef
    issue_number: int
    trigger: Trigger
    limits: RunLimits


class StartRun(BaseModel):
    """What an ``issues.labeled`` delivery asks for, before authorization."""

    kind: Literal["start"] = "start"
    repo: RepoRef
    issue_number: int
    trigger: Trigger

    @property
    def delivery_id(self) -> str:
        return self.trigger.delivery_id


class CommandRequest(BaseModel):
    """A `/otto` command in a comment, before authorization."""

    kind: Literal["command"] = "command"
    repo: RepoRef
    number: int  # the issue or pull request the comment is on
    is_pull_request: bool
    sender: str
    comment_id: int
    delivery_id: str
    command: Command


class ReviewRequest(BaseModel):
    """A submitted review on a pull request, before authorization."""

    kind: Literal["review"] = "review"
    repo: RepoRef
    pr_number: int
    reviewer: str
    state: Literal["approved", "changes_requested"]
    commit_id: str | None
    review_id: int
    body: str = ""
    delivery_id: str


class PullChange(BaseModel):
    """A pull request closed, merged, or pushed to by someone other than Otto."""

    kind: Literal["pull"] = "pull"
    repo: RepoRef
    pr_number: int
    action: Literal["closed", "synchronize"]
    merged: bool = False
    head_sha: str
    sender: str
    delivery_id: str


class CiFailure(BaseModel):
    """Another app's checks failed on a commit."""

    kind: Literal["ci"] = "ci"
    repo: RepoRef
    head_sha: str
    pr_numbers: list[int]
    app_name: str
    delivery_id: str


DeliveryRequest = Annotated[
    StartRun | CommandRequest | ReviewRequest | PullChange | CiFailure, Field(discriminator="kind")
]


class ReviewSignal(BaseModel):
    task_id: str
    pr_number: int
    state: Literal["approved", "changes_requested"]
    commit_id: str | None
    reviewer: str
    review_id: int
    guidance: str = ""


class PullSignal(BaseModel):
    task_id: str
    pr_number: int
    action: Literal["closed", "synchronize"]
    merged: bool
    head_sha: str
    sender: str


class CiSignal(BaseModel):
    task_id: str
    pr_number: int
    head_sha: str
    app_name: str


class RetryRequest(BaseModel):
    task_id: str
    guidance: str = ""
    sender: str
    comment_id: int | None = None
    pr_number: int | None = None
    reason: Literal["command", "review", "ci"] = "command"


class StopRequest(BaseModel):
    sender: str
    comment_id: int | None = None
    number: int | None = None


class IssueContext(BaseModel):
    """The issue and repository as the planner sees them (text already stripped of hidden content)."""

    title: str
    body: str
    author: str
    html_url: str
    base_branch: str
    clone_url: str
    config: RepoConfig
    repo_files: list[str] = Field(default_factory=list)
    repo_files_total: int = 0


class Classification(BaseModel):
    actionable: bool
    summary: str = ""
    questions: list[str] = Field(default_factory=list)


class ModelOutcome(BaseModel):
    usage: Usage = Field(default_factory=Usage)


class ClassifyResult(ModelOutcome):
    classification: Classification


class PlanResult(ModelOutcome):
    plan_summary: str
    tasks: list[PlannedTask]


class RunPhase(StrEnum):
    STARTING = "starting"
    QUEUED = "queued"
    PLANNING = "planning"
    RUNNING = "running"
    WAITING_REVIEW = "waiting_review"
    NEEDS_INFO = "needs_info"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DONE = "done"

    @property
    def final(self) -> bool:
        return self in {RunPhase.NEEDS_INFO, RunPhase.FAILED, RunPhase.CANCELLED, RunPhase.DONE}


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"  # pushed, checks green
    FAILED = "failed"  # pushed, checks red
    ERROR = "error"  # could not produce a branch (agent made no change, git or model failure)
    SKIPPED = "skipped"
    MERGED = "merged"
    ABANDONED = "abandoned"  # its PR was closed without merging


class TaskRecord(BaseModel):
    task: PlannedTask
    batch: int
    branch: str
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    pr_number: int | None = None
    pr_url: str | None = None
    head_sha: str | None = None
    summary: str = ""
    note: str = ""
    failures: int | None = None
    fix_rounds: int = 0
    verify_log_tail: str = ""
    refused_changes: list[str] = Field(default_factory=list)  # what the sandbox boundary kept out of commits
    usage: Usage = Field(default_factory=Usage)
    pr_base: str | None = None  # the branch its PR targets: the base branch, or its one unmerged dependency's
    approved_sha: str | None = None
    approved_by: str | None = None
    merged_sha: str | None = None
    ci_fix_rounds: int = 0
    ci_failed_shas: list[str] = Field(default_factory=list)  # heads whose CI failure was already acted on
    waiting_on: list[str] = Field(default_factory=list)  # dependencies an approval is waiting for


class RunState(BaseModel):
    run_id: str
    repo: RepoRef
    issue_number: int
    phase: RunPhase = RunPhase.STARTING
    reason: str = ""
    classification_summary: str = ""
    questions: list[str] = Field(default_factory=list)
    plan_summary: str = ""
    tasks: list[TaskRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    notices: list[str] = Field(default_factory=list)
    status_comment_id: int | None = None
    temporal_ui_url: str | None = None
    stop_requested_by: str | None = None
    learnings: list[str] = Field(default_factory=list)
    decisions: list[PilotDecision] = Field(default_factory=list)
    retries_used: dict[str, int] = Field(default_factory=dict)
    route_context: dict[str, str] = Field(default_factory=dict)
    preferred_order: list[str] = Field(default_factory=list)
    batches_run: int = 0
    events_handled: int = 0
    budget_usd: float | None = None  # human commands, reviews, PR changes and CI results processed so far

    def record(self, task_id: str) -> TaskRecord:
        for r in self.tasks:
            if r.task.id == task_id:
                return r
        raise KeyError(task_id)

    def finish(self, phase: RunPhase, reason: str) -> None:
        self.phase = phase
        self.reason = reason


class TaskInput(BaseModel):
    run_id: str
    repo: RepoRef
    issue_number: int
    issue_title: str
    base_branch: str
    clone_url: str
    task: PlannedTask
    branch: str
    dependency_branches: list[str] = Field(default_factory=list)
    attempt: int = 1
    config: RepoConfig = Field(default_factory=RepoConfig)
    model: str
    guidance: str = ""
    learnings: str = ""
    route_context: str = ""
    pr_base: str | None = None  # defaults to base_branch
    budget_left_usd: float | None = None


class TaskResult(BaseModel):
    task_id: str
    status: TaskStatus
    budget_exhausted: bool = False
    summary: str = ""
    error: str = ""
    fix_rounds: int = 0
    learning: str = ""
    verify_passed: bool = False
    verify_log_tail: str = ""
    failures: int | None = None
    head_sha: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    files_changed: list[str] = Field(default_factory=list)
    refused_changes: list[str] = Field(default_factory=list)  # "`path`: reason", kept out of the commit
    usage: Usage = Field(default_factory=Usage)


class PublishStatus(BaseModel):
    state: RunState


class Refusal(BaseModel):
    repo: RepoRef
    issue_number: int
    sender: str
    delivery_id: str
    what: str
