"""What activities take and return: bounded, serialisable, no I/O. Workflows and activities both import
these; neither imports the other."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.domain.pilot import PilotDecision
from app.domain.plan import PlannedTask
from app.domain.repo_config import LinkedRepo, RepoConfig
from app.domain.run import (
    AttemptRecord,
    Classification,
    IssueContext,
    RepoRef,
    RunState,
    TaskRecord,
    TaskStatus,
)
from app.domain.usage import Usage

ReactionContent = Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]


class ModelOutcome(BaseModel):
    usage: Usage = Field(default_factory=Usage)


class ClassifyResult(ModelOutcome):
    classification: Classification


class PlanResult(ModelOutcome):
    plan_summary: str
    tasks: list[PlannedTask]


class LinkedMount(BaseModel):
    """Another repository an attempt may read, checked out at ``branch`` and mounted read-only in its sandbox
    at ``/otto/repos/<owner>/<name>`` (for the agent and the checks; never for setup's networked step)."""

    repo: str  # owner/name
    clone_url: str
    branch: str


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
    trigger: str = "first run"  # why this attempt runs, in words (for the PR's attempt history)
    history: list[AttemptRecord] = Field(default_factory=list)  # the task's earlier attempts
    stacked_on: int | None = None  # the dependency's PR this one is stacked on
    resumes: int = 0  # times this attempt was taken up again after an outage interrupted it
    bring_in_base: bool = False  # its PR conflicts with the base branch: merge the base in first
    linked: list[LinkedMount] = Field(default_factory=list)  # other repositories it may read
    issue_repo: str = ""  # owner/name of the issue's repository, when the task changes another one
    merges_after: list[str] = Field(default_factory=list)  # its dependencies' PRs in other repositories


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
    post: bool = True  # False: only Mission Control's snapshot (GitHub can't be written to any more)


class Refusal(BaseModel):
    repo: RepoRef
    issue_number: int
    sender: str
    delivery_id: str
    what: str


class ListFilesInput(BaseModel):
    repo: RepoRef
    clone_url: str
    branch: str


class RebaseInput(BaseModel):
    run_id: str
    repo: RepoRef
    clone_url: str
    branch: str
    upstream_sha: str  # the merged dependency's head: commits after it are this task's own
    onto: str  # the base branch
    expected_sha: str | None  # the branch's head as Otto knows it: never force over anyone else's commits


class RevertInput(BaseModel):
    """Open a PR reverting a merged task's merge commit (``/otto revert`` on a half-merged change set)."""

    run_id: str
    repo: RepoRef
    clone_url: str
    base_branch: str
    merge_sha: str
    merge_commit: bool  # merged with a merge commit (revert against its first parent)
    branch: str  # the revert's branch
    pr_number: int  # the merged PR
    title: str
    issue_ref: str
    asked_by: str


class RevertOutcome(BaseModel):
    pr_number: int
    pr_url: str


class VerifyHeadInput(BaseModel):
    """The repository's checks on a head a person pushed to a task branch (Otto is CI for its branches)."""

    run_id: str
    repo: RepoRef
    clone_url: str
    base_branch: str
    branch: str
    sha: str  # the head the person pushed (checked only while it is still the branch's head)
    pusher: str
    task_id: str
    pr_number: int
    config: RepoConfig
    linked: list[LinkedMount] = Field(default_factory=list)  # other repositories its checks read
    recheck: str = ""  # not a person's push: Otto checks its own head again, because of this (said as is)


class VerifyHeadResult(BaseModel):
    sha: str  # the head that was checked (or, when ``moved``, the branch's head now)
    moved: bool = False  # the branch moved on before the checks ran: nothing was checked
    passed: bool = False
    no_checks: bool = False
    failures: int | None = None
    log_tail: str = ""


class RepoFiles(BaseModel):
    files: list[str]
    total: int


class PermissionQuery(BaseModel):
    repo: RepoRef
    login: str


class ReactInput(BaseModel):
    repo: RepoRef
    issue_number: int
    content: ReactionContent


class LoadedIssue(BaseModel):
    title: str
    body: str
    author: str
    html_url: str
    state: str
    default_branch: str
    clone_url: str
    config_text: str | None
    private: bool = False  # the repository's visibility (unknown: public, the safe side for what flows in)


class LoadIssueInput(BaseModel):
    repo: RepoRef
    issue_number: int
    base_branch: str | None = None


class CommentReaction(BaseModel):
    repo: RepoRef
    comment_id: int
    content: ReactionContent


class ReplyInput(BaseModel):
    repo: RepoRef
    number: int
    key: str  # what makes this reply unique (e.g. the comment it answers): posting twice edits instead
    body: str


class TaskPullQuery(BaseModel):
    repo: RepoRef
    pr_number: int


class TaskPullsQuery(BaseModel):
    """Otto's open task PRs into ``base``."""

    repo: RepoRef
    base: str


class TaskPull(BaseModel):
    pr_number: int = 0
    repo_id: int = 0  # the PR's repository (a task may change another repository than its run's issue's)
    run_id: str
    task_id: str
    issue_number: int
    head_sha: str | None = None  # the PR's head as GitHub has it now
    branch_deleted: bool = False  # the PR is closed and its head branch is gone


class MergeInput(BaseModel):
    repo: RepoRef
    pr_number: int
    approved_sha: str
    method: Literal["merge", "squash", "rebase"]
    title: str
    # `/otto merge`: a writer merges it although Otto's checks fail (GitHub's own rules still apply); the
    # merge commit says so
    override: bool = False
    approved_by: str | None = None  # for the PR body once merged ("on @mona's approval")


class MergeOutcome(BaseModel):
    result: Literal["merged", "already_merged", "head_moved", "not_mergeable", "closed", "red"]
    merge_sha: str | None = None
    head_sha: str | None = None
    message: str = ""
    failing: list[str] = Field(default_factory=list)  # names of the checks that fail on the head
    merged_by: str = ""  # the login that merged it (the App's bot)


class RetargetInput(BaseModel):
    repo: RepoRef
    pr_number: int
    base: str


class BranchInput(BaseModel):
    repo: RepoRef
    branch: str


class ReviewQuery(BaseModel):
    repo: RepoRef
    pr_number: int
    review_id: int
    body: str
    reviewer: str


class CiQuery(BaseModel):
    repo: RepoRef
    head_sha: str


class CloseIssueInput(BaseModel):
    repo: RepoRef
    issue_number: int


class SignalInput(BaseModel):
    """A signal or an update to an open run (``RunMessage`` names)."""

    run_id: str
    signal: str
    payload: dict[str, Any]
    # run_id names an issue (its first run's id): the signal goes to the issue's latest labeling's run
    latest: bool = False


class Delivered(BaseModel):
    """What became of a signal or update: not delivered (no open run), rejected (with the run's answer), or
    accepted."""

    delivered: bool
    rejected: str | None = None


class GateInput(BaseModel):
    installation_id: int
    run_id: str
    action: Literal["acquire", "release"]


class ModelInput(BaseModel):
    repo: RepoRef
    issue_number: int
    context: IssueContext
    model: str
    max_tasks: int
    budget_left_usd: float | None = None
    previous_plan: list[PlannedTask] = Field(default_factory=list)  # `/otto plan <feedback>`: the plan so far
    feedback: str = ""  # ... and the maintainer's feedback on it


class PilotInput(BaseModel):
    model_input: ModelInput
    plan_summary: str
    tasks: list[TaskRecord]
    failed: list[str]
    pending: list[str]
    decisions: list[PilotDecision]
    learnings: list[str]
    retries_used: dict[str, int]
    max_retries: int


class ReplanInput(BaseModel):
    model_input: ModelInput
    tasks: list[TaskRecord]
    failed: list[str]
    replaced: list[str]
    reason: str
    learnings: list[str]


class PilotResult(ModelOutcome):
    decision: PilotDecision


class AttemptProgress(BaseModel):
    """A task attempt's heartbeat details: where it is (Mission Control and the status comment show it)."""

    task: str
    attempt: int
    stage: str = "workspace"  # workspace, agent, push, verify, fix round N, pull request
    step: int = 0  # the agent's step
    max_steps: int = 0
    fix_round: int = 0
    wip_sha: str | None = None  # the agent's work, pushed before verification
    spent: Usage | None = None  # what the attempt's model calls cost so far (a retry after a crash adds it)


class InstallationQuery(BaseModel):
    installation_id: int
    account: str = ""  # for log lines


class InstallationStatus(BaseModel):
    """What GitHub says of an installation now (asked with the App's JWT)."""

    state: Literal["active", "suspended", "gone"]


class LinkedQuery(BaseModel):
    """The repositories a run's settings name, asked about for the person who labeled the issue."""

    repo: RepoRef  # the issue's repository (its installation asks)
    login: str
    linked: list[LinkedRepo]


class RepositoryQuery(BaseModel):
    installation_id: int
    account: str = ""
    repo_ids: list[int]


class RepositoryAccess(BaseModel):
    accessible: list[int]  # those of the asked repositories the installation can still reach


class StopRuns(BaseModel):
    """Stop the active runs of an installation (``repo_ids`` None: of all its repositories)."""

    installation_id: int
    repo_ids: list[int] | None = None
    sender: str
    reason: str  # the final reason each run shows
    post: bool = False  # whether the runs may still post their final status


class StoppedRuns(BaseModel):
    run_ids: list[str]
