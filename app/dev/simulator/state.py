"""In-memory records of the simulated GitHub (plain dataclasses; the Simulator guards them with its lock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]
PERMISSION_ORDER: tuple[Permission, ...] = ("none", "read", "triage", "write", "maintain", "admin")
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimUser:
    login: str
    id: int
    node_id: str
    type: str = "User"
    name: str | None = None
    email: str | None = None
    created_at: datetime = field(default_factory=now)


@dataclass
class SimApp:
    id: int
    slug: str
    name: str
    client_id: str
    public_key_pem: str
    webhook_url: str | None
    webhook_secret: str
    hook_id: int
    bot: SimUser
    owner: SimUser
    node_id: str
    created_at: datetime = field(default_factory=now)
    permissions: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    client_secret: str = ""  # the OAuth client secret (user authorization flow)
    callback_url: str | None = None  # redirect_uri must start with it, when set


@dataclass
class SimInstallation:
    id: int
    app_id: int
    account: SimUser
    node_id: str
    created_at: datetime = field(default_factory=now)
    suspended_at: datetime | None = None
    suspended_by: SimUser | None = None
    repository_ids: set[int] | None = None  # None: all the account's repositories ("all" selection)

    def covers(self, repo_id: int) -> bool:
        return self.repository_ids is None or repo_id in self.repository_ids


@dataclass
class SimToken:
    token: str
    expires_at: datetime
    installation_id: int | None = None  # installation token
    login: str | None = None  # personal token of a human
    revoked: bool = False


@dataclass
class ManifestCode:
    """A one-time code of the App-manifest flow (``POST /app-manifests/{code}/conversions``)."""

    code: str
    app_id: int
    pem: str
    client_secret: str
    webhook_secret: str | None
    expires_at: datetime
    used: bool = False


@dataclass
class SimLabel:
    id: int
    node_id: str
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class SimReaction:
    id: int
    node_id: str
    content: str
    user: SimUser
    created_at: datetime = field(default_factory=now)


@dataclass
class SimComment:
    id: int
    node_id: str
    issue_number: int
    body: str
    user: SimUser
    via_app_id: int | None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    edits: list[str] = field(default_factory=list)  # previous bodies, oldest first
    reactions: list[SimReaction] = field(default_factory=list)


@dataclass
class SimIssue:
    number: int
    id: int
    node_id: str
    title: str
    body: str | None
    user: SimUser
    state: str = "open"
    state_reason: str | None = None
    labels: list[str] = field(default_factory=list)
    comment_ids: list[int] = field(default_factory=list)
    reactions: list[SimReaction] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    closed_at: datetime | None = None
    closed_by: SimUser | None = None
    is_pull: bool = False


@dataclass
class SimReviewComment:
    id: int
    node_id: str
    review_id: int
    path: str
    line: int
    body: str
    user: SimUser
    commit_id: str
    diff_hunk: str
    created_at: datetime = field(default_factory=now)


@dataclass
class SimReview:
    id: int
    node_id: str
    user: SimUser
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED (REST casing)
    body: str
    commit_id: str
    submitted_at: datetime = field(default_factory=now)
    comment_ids: list[int] = field(default_factory=list)


@dataclass
class SimPull:
    number: int
    id: int
    node_id: str
    title: str
    body: str | None
    head_ref: str
    base_ref: str
    user: SimUser
    draft: bool
    last_head_sha: str
    last_base_sha: str
    via_app_id: int | None = None
    state: str = "open"
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: SimUser | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    reviews: list[SimReview] = field(default_factory=list)
    review_comments: list[SimReviewComment] = field(default_factory=list)
    frozen_stats: dict[str, Any] | None = None  # diff stats kept once closed or merged
    mergeability_seen: tuple[str, str] | None = None  # (base, head) whose mergeability was reported


@dataclass
class SimCheckSuite:
    id: int
    node_id: str
    app_id: int
    head_sha: str
    head_branch: str | None
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


@dataclass
class SimCheckRun:
    id: int
    node_id: str
    app_id: int
    suite_id: int
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: datetime | None = field(default_factory=now)
    completed_at: datetime | None = None
    external_id: str | None = None
    details_url: str | None = None
    output: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimRepo:
    owner: SimUser
    name: str
    id: int
    node_id: str
    path: Path
    default_branch: str
    private: bool
    description: str | None = None
    created_at: datetime = field(default_factory=now)
    pushed_at: datetime = field(default_factory=now)
    collaborators: dict[str, Permission] = field(default_factory=dict)
    labels: dict[str, SimLabel] = field(default_factory=dict)
    issues: dict[int, SimIssue] = field(default_factory=dict)
    pulls: dict[int, SimPull] = field(default_factory=dict)
    comments: dict[int, SimComment] = field(default_factory=dict)
    check_runs: dict[int, SimCheckRun] = field(default_factory=dict)
    check_suites: dict[int, SimCheckSuite] = field(default_factory=dict)
    required_checks: list[str] = field(default_factory=list)  # branch protection: these must succeed
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class Delivery:
    """One webhook delivery attempt (a redelivery is a new record with the same ``id``)."""

    id: str
    event: str
    action: str | None
    app_id: int
    body: bytes
    headers: dict[str, str]
    status_code: int | None = None  # None: not delivered (no webhook URL) or connection failed
    response_body: str = ""
    error: str | None = None
    redelivery: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        import json

        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class CallRecord:
    """One REST/GraphQL/git request the simulator answered."""

    method: str
    path: str  # path without the /api/v3 prefix for REST, e.g. /repos/o/r/issues/1/comments
    status: int
    actor: str  # "app:<id>", "installation:<id>", "user:<login>" or "anonymous"
    app_id: int | None
    query: str = ""
    injected: bool = False  # answered by an injected fault (sim.inject_faults), not by the API
    kind: str = "rest"  # "rest" | "graphql" | "git" (smart HTTP) | "web" (HTML pages, e.g. App registration)


@dataclass
class PushRecord:
    owner: str
    repo: str
    actor: str
    updates: list[tuple[str, str | None, str | None]]  # (ref, old sha, new sha); None = absent
