"""What a run is: its inputs, its state (the workflow's memory) and the bounded results activities return."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from app.domain.outages import Waiting
from app.domain.pilot import PilotDecision
from app.domain.plan import PlannedTask
from app.domain.repo_config import RepoConfig
from app.domain.usage import Usage

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
NOTICES_KEPT = 20
LEARNINGS_KEPT = 12


class RepoRef(BaseModel):
    installation_id: int
    owner: str
    name: str
    repo_id: int

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


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
    writable: list[str] = Field(default_factory=list)  # other repositories tasks may change (owner/name)
    private: bool = False  # the issue's repository (unknown: treated as public, the safe side)
    linked_files: dict[str, list[str]] = Field(default_factory=dict)  # other readable repositories' files


class Classification(BaseModel):
    actionable: bool
    summary: str = ""
    questions: list[str] = Field(default_factory=list)


class RunPhase(StrEnum):
    STARTING = "starting"
    QUEUED = "queued"
    PLANNING = "planning"
    PLAN_REVIEW = "plan_review"  # `plan_approval: true`: the plan waits for a writer's `/otto go`
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


class AttemptRecord(BaseModel):
    """One attempt of a task, for its PR's history."""

    attempt: int
    trigger: str  # "first run", "gate pilot", "`/otto retry` by @x", "changes requested by @x", "CI failed"
    outcome: str = ""  # in words: "checks pass", "checks fail (2 tests)", "error: …", "stopped"
    failures: int | None = None
    duration_s: float = 0.0
    cost_usd: float = 0.0


class LinkedRepoState(BaseModel):
    """A repository the run uses besides its own (``repositories:``), as decided at planning."""

    repo: str  # owner/name as GitHub spells it
    repo_id: int
    access: Literal["read", "write"]
    private: bool
    clone_url: str = ""
    default_branch: str = "main"
    shown: bool = True  # its content may reach this run (see app.domain.linking.may_flow)
    share_with: list[str] = Field(default_factory=list)  # its own settings' consent (lower-cased)
    config: RepoConfig | None = None  # its own settings (tasks there run its checks)


class TaskRecord(BaseModel):
    task: PlannedTask
    batch: int
    branch: str
    repo: RepoRef | None = None  # the repository it changes (None: the issue's)
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
    stage: str = ""  # while running: where the attempt is ("agent step 7/40", "verifying", "fix round 1/3")
    history: list[AttemptRecord] = Field(default_factory=list)
    merged_by: str = ""  # who merged it (the App's bot on an approval, or a human on GitHub)
    override_by: str | None = None  # a writer merged it on purpose although its checks were red
    pushed_by: str | None = None  # a person who pushed the current head (None: Otto pushed it)
    verifying_sha: str | None = None  # a person's head whose checks Otto is running now
    closed_from: TaskStatus | None = None  # abandoned (its PR closed) from this status: a reopen restores it
    wip_sha: str | None = None  # this attempt's work in progress, pushed before its checks ran
    conflicts_at: str | None = None  # the base sha its PR conflicts with ("": unknown sha; None: no conflict)


class RunState(BaseModel):
    run_id: str
    repo: RepoRef
    issue_number: int
    phase: RunPhase = RunPhase.STARTING
    reason: str = ""
    classification_summary: str = ""
    questions: list[str] = Field(default_factory=list)
    plan_summary: str = ""
    linked: list[LinkedRepoState] = Field(default_factory=list)  # other repositories the run may use
    tasks: list[TaskRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    notices: list[str] = Field(default_factory=list)
    status_comment_id: int | None = None
    temporal_ui_url: str | None = None
    stop_requested_by: str | None = None
    stop_reason: str = ""  # why it was stopped when not by a person's /otto stop (e.g. the App uninstalled)
    learnings: list[str] = Field(default_factory=list)
    decisions: list[PilotDecision] = Field(default_factory=list)
    retries_used: dict[str, int] = Field(default_factory=dict)
    route_context: dict[str, str] = Field(default_factory=dict)
    preferred_order: list[str] = Field(default_factory=list)
    batches_run: int = 0
    events_handled: int = 0  # human commands, reviews, PR changes and CI results processed so far
    budget_usd: float | None = None
    waiting: Waiting | None = None  # an outage the run is waiting out now (GitHub, the model, the disk)

    def notice(self, text: str) -> None:
        """A line for the status comment (it shows the latest few; the state keeps a bounded history)."""
        self.notices = [*self.notices, text][-NOTICES_KEPT:]

    def record(self, task_id: str) -> TaskRecord:
        for r in self.tasks:
            if r.task.id == task_id:
                return r
        raise KeyError(task_id)

    def finish(self, phase: RunPhase, reason: str) -> None:
        self.phase = phase
        self.reason = reason


class RunMemory(BaseModel):
    """Everything a run must remember, in one serialisable object: what it shows (``state``) and what it
    only uses. It is what a run carries over when it continues as new."""

    state: RunState
    config: RepoConfig = Field(default_factory=RepoConfig)
    context: IssueContext | None = None
    model: str = ""  # the model this run uses (repository setting, else the instance's)
    max_tasks: int = 8
    budget_spent: bool = False
    halt_reason: str = ""  # no task can run on this worker pool (no sandbox): the run ends
    triggers: int = 0  # trigger deliveries seen (the first started the run)
    slot_granted: bool = False
    holding_slot: bool = False
    queue_position: int | None = None
    queue_news: bool = False
    planned: bool = False  # planning is behind it (a continued run resumes after it)
    go_by: str | None = None  # `/otto go`: who approved the plan
    plan_feedback: str = ""  # `/otto plan <feedback>` waiting to be planned with
    plan_feedback_by: str | None = None  # set: a new plan was asked for (feedback may be empty after an edit)
    edited_by: str | None = None  # who last edited the issue's text since the model last read it
    silenced: bool = False  # GitHub can't be written to there any more (App uninstalled or suspended, ...)
