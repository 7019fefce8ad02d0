"""The webhook payloads Otto acts on, typed down to the fields Otto reads. Which handler takes which model
is declared by the handlers themselves (``handlers/``, ``app.routing``).

Why not githubkit's full webhook models: they follow GitHub's newest schema and require fields that older
payloads lack (label ``archived_at``, comment ``reactions``, installation ``app_slug``, …). Nine of GitHub's
own published examples (npm ``@octokit/webhooks-examples``) for events Otto handles fail them, and GitHub
Enterprise Server sends such older shapes. Otto therefore validates exactly what it relies on — people
as githubkit's ``SimpleUser``, the rest as small models here — and ignores the other fields, so a valid
delivery is never rejected for a field Otto doesn't read, and one missing a field Otto needs is a 400.
"""

from __future__ import annotations

from typing import Any, Literal

from githubkit_schemas.latest.models import SimpleUser
from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Installation(Model):
    id: int


class Repository(Model):
    id: int
    name: str
    full_name: str
    owner: SimpleUser
    default_branch: str | None = None


class Label(Model):
    name: str


class IssueRef(Model):
    number: int
    title: str = ""
    body: str | None = None
    pull_request: dict[str, object] | None = None

    @property
    def is_pull_request(self) -> bool:
        return self.pull_request is not None


class Comment(Model):
    id: int
    body: str | None = None
    user: SimpleUser | None = None


class Branch(Model):
    ref: str
    sha: str


class PullRequestRef(Model):
    number: int
    head: Branch
    base: Branch
    merged: bool | None = None
    user: SimpleUser | None = None


class Review(Model):
    id: int
    state: str
    body: str | None = None
    commit_id: str | None = None
    user: SimpleUser | None = None


class App(Model):
    id: int
    slug: str | None = None


class PullNumber(Model):
    number: int


class CheckSuite(Model):
    id: int
    head_sha: str
    head_branch: str | None = None
    conclusion: str | None = None
    app: App | None = None
    pull_requests: list[PullNumber] = []


class CheckRun(Model):
    id: int
    name: str
    head_sha: str
    conclusion: str | None = None
    app: App | None = None
    pull_requests: list[PullNumber] = []


class Event(Model):
    action: str
    sender: SimpleUser
    installation: Installation | None = None
    repository: Repository | None = None


class IssuesLabeled(Event):
    action: Literal["labeled"]
    issue: IssueRef
    label: Label | None = None


class PushEvent(Event):
    """A push to a branch (``push`` has no action)."""

    action: str = ""
    ref: str
    before: str = ""
    after: str
    deleted: bool = False
    forced: bool = False


class IssuesUnlabeled(Event):
    action: Literal["unlabeled"]
    issue: IssueRef
    label: Label | None = None


class IssuesClosed(Event):
    action: Literal["closed"]
    issue: IssueRef


class IssuesEdited(Event):
    action: Literal["edited"]
    issue: IssueRef
    changes: dict[str, Any] = Field(default_factory=dict)  # {"title": {"from": …}, "body": {"from": …}}


class IssueCommentCreated(Event):
    action: Literal["created"]
    issue: IssueRef
    comment: Comment


class PullRequestEvent(Event):
    action: Literal["closed", "synchronize", "reopened", "edited", "ready_for_review"]
    pull_request: PullRequestRef


class ReviewSubmitted(Event):
    action: Literal["submitted"]
    review: Review
    pull_request: PullRequestRef


class CheckSuiteCompleted(Event):
    action: Literal["completed"]
    check_suite: CheckSuite


class CheckRunCompleted(Event):
    action: Literal["completed"]
    check_run: CheckRun


class Account(Model):
    login: str | None = None  # an enterprise account has a slug instead
    slug: str | None = None

    @property
    def name(self) -> str:
        return self.login or self.slug or ""


class InstalledOn(Installation):
    account: Account | None = None

    @property
    def account_name(self) -> str:
        return self.account.name if self.account is not None else ""


class RepositoryBrief(Model):
    id: int
    name: str
    full_name: str


class InstallationEvent(Model):
    action: str
    sender: SimpleUser
    installation: InstalledOn | None = None


class InstallationRepositoriesEvent(Model):
    action: str
    sender: SimpleUser
    installation: InstalledOn
    repository_selection: str | None = None
    repositories_added: list[RepositoryBrief] = []
    repositories_removed: list[RepositoryBrief] = []
