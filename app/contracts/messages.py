"""What reaches a run from outside: its input (and what it carries over continue-as-new), the requests a
webhook turns into (before authorization), and the run workflow's signals and updates after it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.domain.commands import Command
from app.domain.run import RepoRef, RunMemory


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
    trigger_label: str = "otto"
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
    public_url: str | None = None  # the base of links to Mission Control
    run_history_max_events: int = 10_000  # continue as new past this (or when Temporal suggests it)
    outage_deadline_s: float = 86_400.0  # an outage is waited out until this long after the run began
    outage_first_wait_s: float = 10.0
    outage_max_wait_s: float = 300.0

    @classmethod
    def of(cls, settings: object) -> RunLimits:
        """The limits from Otto's settings: every field is the setting of the same name."""
        return cls.model_validate({name: getattr(settings, name) for name in cls.model_fields})


OUTAGE_MEMO = "outage"  # the memo key a delivery workflow finds its OutagePolicy under


class OutagePolicy(BaseModel):
    """How a workflow waits out an outage: until ``deadline_s`` after it began, trying again after
    ``first_wait_s``, doubling up to ``max_wait_s`` (a delivery's in its memo, a run's in its limits)."""

    deadline_s: float = 86_400.0
    first_wait_s: float = 10.0
    max_wait_s: float = 300.0

    @classmethod
    def of(cls, settings: object) -> OutagePolicy:
        return cls(
            deadline_s=getattr(settings, "outage_deadline_s"),  # noqa: B009
            first_wait_s=getattr(settings, "outage_first_wait_s"),  # noqa: B009
            max_wait_s=getattr(settings, "outage_max_wait_s"),  # noqa: B009
        )


class RunInput(BaseModel):
    repo: RepoRef
    issue_number: int
    trigger: Trigger
    limits: RunLimits
    carried: RunMemory | None = None  # what a run continued as new remembers


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


PullAction = Literal["closed", "synchronize", "reopened", "ready_for_review"]


class PullChange(BaseModel):
    """A pull request closed, merged, reopened, marked ready for review, or pushed to by someone other than
    Otto."""

    kind: Literal["pull"] = "pull"
    repo: RepoRef
    pr_number: int
    action: PullAction
    merged: bool = False
    head_sha: str
    sender: str
    delivery_id: str


class BaseMoved(BaseModel):
    """A person (or a merge) moved a repository's default branch: Otto's open PRs on it may now conflict."""

    kind: Literal["base_moved"] = "base_moved"
    repo: RepoRef
    branch: str
    sha: str
    sender: str
    delivery_id: str


class BaseSignal(BaseModel):
    task_id: str
    pr_number: int
    repo_id: int = 0  # the PR's repository (0: the issue's — older signals)
    branch: str
    sha: str
    sender: str


class CiFailure(BaseModel):
    """Another app's checks failed on a commit."""

    kind: Literal["ci"] = "ci"
    repo: RepoRef
    head_sha: str
    pr_numbers: list[int]
    app_name: str
    delivery_id: str


class IssueClosed(BaseModel):
    """The run's issue was closed: the run stops, as with `/otto stop` by whoever closed it."""

    kind: Literal["issue_closed"] = "issue_closed"
    repo: RepoRef
    issue_number: int
    sender: str
    delivery_id: str


class IssueEdited(BaseModel):
    """The run's issue was edited (its title or body; or ``label``: the trigger label was removed):
    acknowledged; the run keeps the labeled text and goes on."""

    kind: Literal["issue_edited"] = "issue_edited"
    repo: RepoRef
    issue_number: int
    sender: str
    fields: list[str]  # "title", "body"; or "label": the trigger label removed
    delivery_id: str


class EditSignal(BaseModel):
    sender: str
    fields: list[str]


class InstallationChange(BaseModel):
    """The App was uninstalled or suspended (``installation.deleted`` / ``.suspend``), or repositories were
    taken out of its installation (``installation_repositories.removed``): the runs there stop."""

    kind: Literal["installation"] = "installation"
    installation_id: int
    account: str  # the account's login ("" when the payload names none)
    action: Literal["deleted", "suspend", "removed"]
    repositories: list[RepoRef] = Field(default_factory=list)  # removed: the repositories taken out
    sender: str
    delivery_id: str


DeliveryRequest = Annotated[
    StartRun
    | CommandRequest
    | ReviewRequest
    | PullChange
    | CiFailure
    | IssueClosed
    | IssueEdited
    | BaseMoved
    | InstallationChange,
    Field(discriminator="kind"),
]


class ReviewSignal(BaseModel):
    task_id: str
    pr_number: int
    repo_id: int = 0  # the PR's repository (0: the issue's — older signals)
    state: Literal["approved", "changes_requested"]
    commit_id: str | None
    reviewer: str
    review_id: int
    guidance: str = ""
    pr_head_sha: str | None = None  # the PR's head as GitHub had it when the review came in


class PullSignal(BaseModel):
    task_id: str
    pr_number: int
    repo_id: int = 0  # the PR's repository (0: the issue's — older signals)
    action: PullAction
    merged: bool
    head_sha: str
    sender: str
    branch_deleted: bool = False  # closed because its head branch was deleted


class CiSignal(BaseModel):
    task_id: str
    pr_number: int
    repo_id: int = 0  # the PR's repository (0: the issue's — older signals)
    head_sha: str
    app_name: str


class RetryRequest(BaseModel):
    task_id: str
    repo_id: int = 0  # the repository of the PR it was asked on (0: the issue's)
    guidance: str = ""
    sender: str
    comment_id: int | None = None
    pr_number: int | None = None
    reason: Literal["command", "review", "ci"] = "command"


class StopRequest(BaseModel):
    sender: str
    comment_id: int | None = None
    number: int | None = None
    reason: str = ""  # the run's final reason ("" : "Stopped by @sender")
    post: bool = True  # False: GitHub can't be written to there any more (App uninstalled, suspended, ...)


class RevertRequest(BaseModel):
    """`/otto revert`: open revert PRs for the merged part of a change set that merged only in part."""

    sender: str
    comment_id: int | None = None


class MergeRequest(BaseModel):
    """`/otto merge` on a task's PR: merge it as it is, although its checks fail."""

    task_id: str
    repo_id: int = 0  # the PR's repository (0: the issue's)
    sender: str
    pr_number: int
    comment_id: int | None = None


class PlanCommand(BaseModel):
    """`/otto go` (``feedback`` empty) or `/otto plan <feedback>` while the plan waits for approval."""

    sender: str
    feedback: str = ""
    comment_id: int | None = None


RUN_WORKFLOW = "RunWorkflow"  # the run workflow's type name
GATE_WORKFLOW = "InstallationGate"  # the installation's queue of runs


class RunMessage(StrEnum):
    """The run workflow's signals, updates and query, by name (callers outside the workflow use these)."""

    # signals
    TRIGGER = "trigger"
    GRANTED = "granted"
    QUEUED = "queued"
    REVIEW = "review"
    PULL_CHANGED = "pull_changed"
    CI_FAILED = "ci_failed"
    REFRESH = "refresh"
    PROGRESS = "progress"  # a running attempt's stage (from the task activity)
    ISSUE_EDITED = "issue_edited"
    BASE_MOVED = "base_moved"
    # updates (validated: a rejected one is answered at once and changes nothing)
    RETRY = "retry"
    STOP = "stop"
    MERGE = "merge"
    GO = "go"
    PLAN = "plan"
    REVERT = "revert"
    # query
    STATUS = "status"


RUN_SIGNALS = frozenset(
    {
        RunMessage.REVIEW,
        RunMessage.PULL_CHANGED,
        RunMessage.CI_FAILED,
        RunMessage.REFRESH,
        RunMessage.ISSUE_EDITED,
        RunMessage.BASE_MOVED,
    }
)
RUN_UPDATES = frozenset(
    {RunMessage.RETRY, RunMessage.STOP, RunMessage.MERGE, RunMessage.GO, RunMessage.PLAN, RunMessage.REVERT}
)


class GateState(BaseModel):
    installation_id: int
    max_active: int
    active: list[str] = []
    waiting: list[str] = []
