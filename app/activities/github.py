"""Every GitHub write Otto makes, each idempotent: look before you create.

``RepoGitHub`` holds the operations for one repository (installation-scoped client); ``GitHubActivities``
exposes the ones the workflows call directly as Temporal activities.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed
from githubkit.utils import UNSET
from githubkit_schemas.latest.models import FullRepository, Issue, PullRequestSimple, ReviewComment
from githubkit_schemas.latest.types import (
    ReposOwnerRepoCheckRunsCheckRunIdPatchBodyPropOutputType,
    ReposOwnerRepoCheckRunsPostBodyPropOutputType,
)
from temporalio import activity

from app import observability
from app.artifacts import ArtifactStore, put_quietly, run_key, snapshot_key
from app.contracts.io import (
    BranchInput,
    CiQuery,
    CloseIssueInput,
    CommentReaction,
    LinkedQuery,
    LoadedIssue,
    LoadIssueInput,
    MergeInput,
    MergeOutcome,
    PermissionQuery,
    PublishStatus,
    ReactInput,
    ReactionContent,
    Refusal,
    ReplyInput,
    RetargetInput,
    ReviewQuery,
    TaskPull,
    TaskPullQuery,
    TaskPullsQuery,
)
from app.domain.linking import LinkedStatus
from app.domain.links import run_url
from app.domain.redact import redact
from app.domain.render import refusal_marker, render_refusal, render_status, restate_merged, status_marker
from app.domain.repo_config import CONFIG_PATH, RepoConfig, RepoConfigError, parse_repo_config
from app.domain.run import WRITE_PERMISSIONS, RepoRef, RunState
from app.domain.snapshot import RunSnapshot, advance
from app.github_auth import GitHubApp
from app.github_retry import durable_rate_limits

log = logging.getLogger("otto.github")
ON_PURPOSE = "Merged on purpose with `/otto merge` although Otto's checks failed."

CHECK_NAME = "otto/verify"
CHECK_TEXT_LIMIT = 60_000  # GitHub caps check-run output text at 65535 characters

CheckConclusion = Literal["success", "failure", "neutral"]


def _status(e: RequestFailed) -> int:
    return e.response.status_code


def _error_message(e: RequestFailed) -> str:
    try:
        data = e.response.json()
    except ValueError:
        return f"GitHub answered {_status(e)}"
    return str(data.get("message") if isinstance(data, dict) else data) or f"GitHub answered {_status(e)}"


@dataclass
class PullRef:
    number: int
    url: str
    node_id: str
    head_sha: str


class RepoGitHub:
    """Installation-scoped operations on one repository."""

    def __init__(
        self,
        gh: GitHub[TokenAuthStrategy],
        repo: RepoRef,
        *,
        bot_login: str | None = None,
        app_id: int | None = None,
    ) -> None:
        """``bot_login``/``app_id``: the App's own identity. Comments, PRs and check runs are looked up only
        among those the App wrote itself: a look-alike planted by someone else is never adopted."""
        self.gh = gh
        self.repo = repo
        self.owner = repo.owner
        self.name = repo.name
        self.bot_login = bot_login
        self.app_id = app_id

    def _mine(self, user: Any) -> bool:
        return self.bot_login is None or (user is not None and getattr(user, "login", None) == self.bot_login)

    # --- reads -------------------------------------------------------------------------------------
    async def permission(self, login: str) -> str:
        """admin|write|read|none (maintain counts as write, triage as read). Errors fail closed: none."""
        try:
            resp = await self.gh.rest.repos.async_get_collaborator_permission_level(
                self.owner, self.name, login
            )
        except RequestFailed:
            return "none"
        data = resp.parsed_data
        role = getattr(data, "role_name", None)
        if isinstance(role, str) and role in WRITE_PERMISSIONS:
            return role
        return data.permission

    async def is_writer(self, login: str) -> bool:
        return await self.permission(login) in WRITE_PERMISSIONS

    async def repository(self) -> FullRepository:
        return (await self.gh.rest.repos.async_get(self.owner, self.name)).parsed_data

    async def issue(self, number: int) -> Issue:
        return (await self.gh.rest.issues.async_get(self.owner, self.name, number)).parsed_data

    async def file_text(self, path: str, ref: str) -> str | None:
        try:
            resp = await self.gh.rest.repos.async_get_content(self.owner, self.name, path, ref=ref)
        except RequestFailed as e:
            if _status(e) == 404:
                return None
            raise
        data = resp.parsed_data
        content = getattr(data, "content", None)
        if not isinstance(content, str):
            return None
        return base64.b64decode(content).decode("utf-8", errors="replace")

    async def config_text(self, ref: str) -> str | None:
        return await self.file_text(CONFIG_PATH, ref)

    # --- comments and reactions -----------------------------------------------------------------------
    async def react_to_issue(self, number: int, content: ReactionContent) -> None:
        # GitHub answers 200 with the existing reaction when it is already there: naturally idempotent
        await self.gh.rest.reactions.async_create_for_issue(self.owner, self.name, number, content=content)

    async def react_to_comment(self, comment_id: int, content: ReactionContent) -> None:
        await self.gh.rest.reactions.async_create_for_issue_comment(
            self.owner, self.name, comment_id, content=content
        )

    async def find_comment(self, number: int, marker: str) -> int | None:
        paginator: Any = self.gh.rest.paginate(
            self.gh.rest.issues.async_list_comments,
            owner=self.owner,
            repo=self.name,
            issue_number=number,
            per_page=100,
        )
        async for comment in paginator:
            if comment.body and marker in comment.body and self._mine(comment.user):
                return int(comment.id)
        return None

    async def upsert_comment(self, number: int, marker: str, body: str, comment_id: int | None) -> int:
        """Edit comment ``comment_id`` (or the one carrying ``marker``); create it only if none exists."""
        if marker not in body:
            raise ValueError("an Otto comment must carry its marker")
        if comment_id is None:
            comment_id = await self.find_comment(number, marker)
        if comment_id is not None:
            try:
                await self.gh.rest.issues.async_update_comment(self.owner, self.name, comment_id, body=body)
                return comment_id
            except RequestFailed as e:
                if _status(e) != 404:  # deleted by a human: post a new one
                    raise
        created = await self.gh.rest.issues.async_create_comment(self.owner, self.name, number, body=body)
        return created.parsed_data.id

    # --- pull requests and checks ---------------------------------------------------------------------
    async def find_open_pr(self, head_branch: str) -> PullRef | None:
        resp = await self.gh.rest.pulls.async_list(
            self.owner, self.name, state="open", head=f"{self.owner}:{head_branch}", per_page=10
        )
        pulls: list[PullRequestSimple] = list(resp.parsed_data)
        for pr in pulls:
            if pr.head.ref == head_branch and self._mine(pr.user):
                return PullRef(pr.number, pr.html_url, pr.node_id, pr.head.sha)
        return None

    async def upsert_draft_pr(self, *, head: str, base: str, title: str, body: str) -> PullRef:
        existing = await self.find_open_pr(head)
        if existing is not None:
            await self.gh.rest.pulls.async_update(
                self.owner, self.name, existing.number, title=title, body=body
            )
            return existing
        try:
            resp = await self.gh.rest.pulls.async_create(
                self.owner, self.name, title=title, head=head, base=base, body=body, draft=True
            )
        except RequestFailed as e:
            if _status(e) == 422:  # created concurrently by a retried attempt: take that one
                again = await self.find_open_pr(head)
                if again is not None:
                    await self.gh.rest.pulls.async_update(
                        self.owner, self.name, again.number, title=title, body=body
                    )
                    return again
            raise
        pr = resp.parsed_data
        return PullRef(pr.number, pr.html_url, pr.node_id, pr.head.sha)

    async def restate_pull(self, number: int, rewrite: Callable[[str], str]) -> bool:
        """Rewrite the body of pull request ``number`` if the App opened it; whether it changed."""
        pr = (await self.gh.rest.pulls.async_get(self.owner, self.name, number)).parsed_data
        if not self._mine(pr.user):
            return False
        body = pr.body or ""
        new = rewrite(body)
        if new == body:
            return False
        await self.gh.rest.pulls.async_update(self.owner, self.name, number, body=new)
        return True

    async def failing_checks(self, head_sha: str) -> list[str]:
        """Names of the check runs on ``head_sha`` (any app's, the latest of each) that did not pass."""
        resp = await self.gh.rest.checks.async_list_for_ref(self.owner, self.name, head_sha, filter_="latest")
        bad = {"failure", "timed_out", "cancelled", "action_required", "startup_failure"}
        return sorted({run.name for run in resp.parsed_data.check_runs if run.conclusion in bad})

    async def upsert_check_run(
        self,
        *,
        head_sha: str,
        conclusion: CheckConclusion,
        title: str,
        summary: str,
        text: str,
        details_url: str | None = None,
    ) -> int:
        output: ReposOwnerRepoCheckRunsPostBodyPropOutputType = {
            "title": title,
            "summary": summary[:CHECK_TEXT_LIMIT],
            "text": text[-CHECK_TEXT_LIMIT:],
        }
        resp = await self.gh.rest.checks.async_list_for_ref(
            self.owner, self.name, head_sha, check_name=CHECK_NAME, filter_="latest"
        )
        link: dict[str, Any] = {"details_url": details_url} if details_url else {}
        for run in resp.parsed_data.check_runs:
            ours = self.app_id is None or (run.app is not None and run.app.id == self.app_id)
            if run.name == CHECK_NAME and ours:
                await self.gh.rest.checks.async_update(
                    self.owner,
                    self.name,
                    run.id,
                    status="completed",
                    conclusion=conclusion,
                    output=cast(ReposOwnerRepoCheckRunsCheckRunIdPatchBodyPropOutputType, output),
                    **link,
                )
                return int(run.id)
        created = await self.gh.rest.checks.async_create(
            self.owner,
            self.name,
            name=CHECK_NAME,
            head_sha=head_sha,
            status="completed",
            conclusion=conclusion,
            output=output,
            **link,
        )
        return int(created.parsed_data.id)


_TASK_MARKER = re.compile(
    r"<!-- otto:task run=(?P<run>otto/(?P<repo>\d+)/(?P<issue>\d+)(?:\.\d+)?) task=(?P<task>[a-z0-9_-]+) -->"
)


def _task_pull_of(pr: Any, repo_id: int, bot_login: str) -> TaskPull | None:
    """The run and task of a PR Otto opened (its author is Otto, its body carries the marker), else None."""
    if pr.user is None or pr.user.login != bot_login:
        return None
    m = _TASK_MARKER.search(pr.body or "")
    if m is None:
        return None
    # the marker may name a run of another repository (a change set's task PR): that run checks that the
    # task is this repository's (``repo_id``) — a writer who edits a body to point elsewhere changes nothing
    return TaskPull(
        repo_id=repo_id,
        pr_number=pr.number,
        run_id=m.group("run"),
        task_id=m.group("task"),
        issue_number=int(m.group("issue")),
        head_sha=pr.head.sha,
    )


def reply_marker(key: str) -> str:
    return f"<!-- otto:reply {key} -->"


class StillComputing(Exception):
    """GitHub hasn't computed mergeability yet; the activity is retried after a backoff."""


READY_FOR_REVIEW = """
mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }
"""
BACK_TO_DRAFT = """
mutation($id: ID!) { convertPullRequestToDraft(input: {pullRequestId: $id}) { pullRequest { isDraft } } }
"""


async def repo_client(app: GitHubApp, ref: RepoRef) -> RepoGitHub:
    """Installation-scoped operations on ``ref`` that adopt only what this App wrote."""
    gh = await app.installation_client(ref.installation_id)
    return RepoGitHub(gh, ref, bot_login=await app.bot_login(), app_id=app.app_id)


POSTED_KEPT = 2048  # status comments whose last body a worker remembers


class GitHubActivities:
    """The GitHub side effects the workflows call directly. A rate limit asking for a long wait fails the
    activity with a non-retryable ``ApplicationError(type="RateLimited", details=[wait_s, guessed])``: the
    workflow sleeps on a durable timer and calls again (``app.workflows.calls.github``)."""

    def __init__(
        self,
        app: GitHubApp,
        label: str,
        store: ArtifactStore | None = None,
        public_url: str | None = None,
        warning: str | None = None,
    ) -> None:
        """``warning``: shown at the top of every status comment (e.g. commands run without a sandbox)."""
        self.app = app
        self.label = label
        self.store = store  # Mission Control's run snapshots and the issue as loaded
        self.public_url = public_url
        self.warning = warning
        # the body this worker last wrote to each status comment: an unchanged status is not written again
        self._posted: OrderedDict[int, str] = OrderedDict()

    async def repo(self, ref: RepoRef) -> RepoGitHub:
        return await repo_client(self.app, ref)

    @activity.defn
    @durable_rate_limits
    async def check_permission(self, q: PermissionQuery) -> str:
        return await (await self.repo(q.repo)).permission(q.login)

    @activity.defn
    @durable_rate_limits
    async def react_to_issue(self, r: ReactInput) -> None:
        await (await self.repo(r.repo)).react_to_issue(r.issue_number, r.content)

    @activity.defn
    @durable_rate_limits
    async def publish_status(self, p: PublishStatus) -> int:
        state = p.state
        observability.run_published(state)
        await self._write_snapshot(state)
        if not p.post:  # GitHub refuses the App there now: Mission Control's snapshot only
            return state.status_comment_id or 0
        body = redact(
            render_status(state, self.label, run_url(self.public_url, state.run_id), self.warning),
            self.app.cached_tokens() + self.app.settings.secret_values(),
        )
        if state.status_comment_id is not None and self._posted.get(state.status_comment_id) == body:
            return state.status_comment_id  # nothing changed: no edit (GitHub's rate limit, the audit log)
        gh = await self.repo(state.repo)
        comment_id = await gh.upsert_comment(
            state.issue_number, status_marker(state.run_id), body, state.status_comment_id
        )
        self._posted[comment_id] = body
        self._posted.move_to_end(comment_id)
        while len(self._posted) > POSTED_KEPT:
            self._posted.popitem(last=False)
        return comment_id

    async def _write_snapshot(self, state: RunState) -> None:
        """The run as Mission Control shows it, beside its artifacts (best effort: the status comment is
        what must not fail). Publishes of one run are serialised by the workflow, so read-advance-write
        has a single writer."""
        store = self.store
        if store is None:
            return
        execution = activity.info().workflow_run_id or ""
        secrets = self.app.cached_tokens() + self.app.settings.secret_values()

        def write() -> None:
            key = snapshot_key(state.run_id)
            prev: RunSnapshot | None = None
            raw = store.get(key)
            if raw:
                try:
                    prev = RunSnapshot.model_validate_json(raw)
                except ValueError:
                    prev = None
            title = prev.issue_title if prev is not None and prev.execution == execution else ""
            if not title:
                issue = store.get_text(f"{run_key(state.run_id)}/issue.json")
                if issue:
                    try:
                        title = str(json.loads(issue).get("title") or "")
                    except (ValueError, AttributeError):
                        title = ""
            snap = advance(prev, state, now=datetime.now(UTC), execution=execution, issue_title=title)
            store.put_text(key, redact(snap.model_dump_json(), secrets))

        try:
            await asyncio.to_thread(write)
        except Exception:
            log.warning("could not write the snapshot of %s", state.run_id, exc_info=True)

    @activity.defn
    @durable_rate_limits
    async def post_refusal(self, r: Refusal) -> int:
        gh = await self.repo(r.repo)
        return await gh.upsert_comment(
            r.issue_number,
            refusal_marker(r.delivery_id),
            render_refusal(r.sender, r.what, r.delivery_id),
            None,
        )

    @activity.defn
    @durable_rate_limits
    async def react_to_comment(self, r: CommentReaction) -> None:
        await (await self.repo(r.repo)).react_to_comment(r.comment_id, r.content)

    @activity.defn
    @durable_rate_limits
    async def reply(self, r: ReplyInput) -> int:
        marker = reply_marker(r.key)
        body = redact(f"{marker}\n{r.body}", self.app.cached_tokens() + self.app.settings.secret_values())
        return await (await self.repo(r.repo)).upsert_comment(r.number, marker, body, None)

    @activity.defn
    @durable_rate_limits
    async def resolve_task_pull(self, q: TaskPullQuery) -> TaskPull | None:
        """Which run and task an Otto PR belongs to: its author must be Otto, its body carries the marker."""
        gh = await self.repo(q.repo)
        try:
            pr = (await gh.gh.rest.pulls.async_get(q.repo.owner, q.repo.name, q.pr_number)).parsed_data
        except RequestFailed as e:
            if _status(e) == 404:
                return None
            raise
        pull = _task_pull_of(pr, q.repo.repo_id, await self.app.bot_login())
        if pull is not None and pr.state == "closed" and not pr.merged:  # closed as its branch was deleted?
            try:
                await gh.gh.rest.git.async_get_ref(q.repo.owner, q.repo.name, f"heads/{pr.head.ref}")
            except RequestFailed as e:
                if _status(e) != 404:
                    raise
                pull.branch_deleted = True
        return pull

    @activity.defn
    @durable_rate_limits
    async def linked_repositories(self, q: LinkedQuery) -> list[LinkedStatus]:
        """What GitHub says of each repository the run's settings name: does this installation reach it (its
        token sees only the installation's repositories), is it private, what may the labeler do there."""
        own = await self.repo(q.repo)
        out: list[LinkedStatus] = []
        for link in q.linked:
            owner, _, name = link.repo.partition("/")
            try:
                data = (await own.gh.rest.repos.async_get(owner, name)).parsed_data
            except RequestFailed as e:
                if _status(e) not in (403, 404):
                    raise
                out.append(LinkedStatus(repo=link.repo, access=link.access, installed=False))
                continue
            inst = q.repo.installation_id
            ref = RepoRef(installation_id=inst, owner=data.owner.login, name=data.name, repo_id=data.id)
            there = await self.repo(ref)
            try:  # its own settings: its checks, and a private repository's consent to public ones
                config = parse_repo_config(await there.config_text(data.default_branch))
            except RepoConfigError:
                config = RepoConfig()  # a broken file consents to nothing
            out.append(
                LinkedStatus(
                    repo=link.repo,
                    access=link.access,
                    installed=True,
                    repo_id=data.id,
                    full_name=data.full_name,
                    private=bool(data.private),
                    permission=await there.permission(q.login),
                    share_with=config.share_with,
                    config=config,
                    clone_url=data.clone_url,
                    default_branch=data.default_branch,
                )
            )
        return out

    @activity.defn
    @durable_rate_limits
    async def list_task_pulls(self, q: TaskPullsQuery) -> list[TaskPull]:
        """Otto's open task PRs into ``q.base`` (at most 300, newest first)."""
        gh = await self.repo(q.repo)
        bot = await self.app.bot_login()
        found: list[TaskPull] = []
        for page in range(1, 4):
            resp = await gh.gh.rest.pulls.async_list(
                q.repo.owner, q.repo.name, state="open", base=q.base, per_page=100, page=page
            )
            pulls: list[PullRequestSimple] = list(resp.parsed_data)
            found += [p for p in (_task_pull_of(pr, q.repo.repo_id, bot) for pr in pulls) if p is not None]
            if len(pulls) < 100:
                break
        return found

    @activity.defn
    @durable_rate_limits
    async def pull_mergeable(self, q: TaskPullQuery) -> bool | None:
        """Whether GitHub can merge the PR into its base now (None: it is closed); waits while GitHub
        computes it."""
        gh = await self.repo(q.repo)
        pr = (await gh.gh.rest.pulls.async_get(q.repo.owner, q.repo.name, q.pr_number)).parsed_data
        if pr.state != "open":
            return None
        if pr.mergeable is None:
            raise StillComputing(f"GitHub is still computing whether #{q.pr_number} can be merged")
        return pr.mergeable

    @activity.defn
    @durable_rate_limits
    async def merge_task_pull(self, m: MergeInput) -> MergeOutcome:
        """Merge exactly the approved commit, after a fresh read of the PR. Safe to run twice."""
        gh = await self.repo(m.repo)
        pr = (await gh.gh.rest.pulls.async_get(m.repo.owner, m.repo.name, m.pr_number)).parsed_data
        if pr.merged:
            return MergeOutcome(result="already_merged", head_sha=pr.head.sha)
        if pr.state != "open":
            return MergeOutcome(result="closed", head_sha=pr.head.sha, message="the pull request is closed")
        if pr.head.sha != m.approved_sha:
            return MergeOutcome(result="head_moved", head_sha=pr.head.sha)
        if pr.mergeable is None:
            raise StillComputing(f"GitHub is still computing whether #{m.pr_number} can be merged")
        if not pr.mergeable:
            return MergeOutcome(
                result="not_mergeable",
                head_sha=pr.head.sha,
                message=f"GitHub says it can't be merged ({pr.mergeable_state})",
            )
        failing = await gh.failing_checks(pr.head.sha)
        if pr.mergeable_state == "blocked":  # GitHub's required checks (or reviews) are not met
            return MergeOutcome(
                result="red", head_sha=pr.head.sha, failing=failing, message="blocked by GitHub"
            )
        if pr.draft:
            await gh.gh.async_graphql(READY_FOR_REVIEW, {"id": pr.node_id})
        try:
            resp = await gh.gh.rest.pulls.async_merge(
                m.repo.owner,
                m.repo.name,
                m.pr_number,
                sha=m.approved_sha,
                merge_method=m.method,
                commit_title=f"{m.title} (#{m.pr_number})",
                commit_message=ON_PURPOSE if m.override else UNSET,
            )
        except RequestFailed as e:
            message = _error_message(e)
            if _status(e) == 409:
                return MergeOutcome(result="head_moved", head_sha=None, message=message)
            if _status(e) in (405, 422):
                if pr.draft:  # it stays what it was: a draft
                    await gh.gh.async_graphql(BACK_TO_DRAFT, {"id": pr.node_id})
                if "status check" in message.lower():
                    return MergeOutcome(result="red", head_sha=pr.head.sha, failing=failing, message=message)
                return MergeOutcome(result="not_mergeable", head_sha=pr.head.sha, message=message)
            raise
        merged_by = await self.app.bot_login()
        try:  # the body stops asking for an approval; a failure here must not undo what was done
            await gh.restate_pull(
                m.pr_number,
                lambda body: restate_merged(
                    body,
                    base=pr.base.ref,
                    merged_by=merged_by,
                    approved_by=m.approved_by,
                    override=m.override,
                ),
            )
        except Exception:
            log.warning("could not restate the body of merged #%d", m.pr_number, exc_info=True)
        return MergeOutcome(
            result="merged", merge_sha=resp.parsed_data.sha, head_sha=m.approved_sha, merged_by=merged_by
        )

    @activity.defn
    @durable_rate_limits
    async def close_issue(self, c: CloseIssueInput) -> None:
        gh = await self.repo(c.repo)
        await gh.gh.rest.issues.async_update(
            c.repo.owner, c.repo.name, c.issue_number, state="closed", state_reason="completed"
        )

    @activity.defn
    @durable_rate_limits
    async def retarget_pull(self, r: RetargetInput) -> None:
        gh = await self.repo(r.repo)
        await gh.gh.rest.pulls.async_update(r.repo.owner, r.repo.name, r.pr_number, base=r.base)

    @activity.defn
    @durable_rate_limits
    async def delete_branch(self, b: BranchInput) -> None:
        gh = await self.repo(b.repo)
        try:
            await gh.gh.rest.git.async_delete_ref(b.repo.owner, b.repo.name, f"heads/{b.branch}")
        except RequestFailed as e:
            if _status(e) not in (404, 422):  # already gone
                raise

    @activity.defn
    @durable_rate_limits
    async def review_guidance(self, q: ReviewQuery) -> str:
        """A change request as guidance for the agent: the review's text and each inline comment."""
        gh = await self.repo(q.repo)
        resp = await gh.gh.rest.pulls.async_list_comments_for_review(
            q.repo.owner, q.repo.name, q.pr_number, q.review_id, per_page=100
        )
        lines = [f"@{q.reviewer} requested changes:"]
        if q.body.strip():
            lines.append(q.body.strip())
        comments: list[ReviewComment] = list(resp.parsed_data)
        for c in comments:
            line = c.line if isinstance(c.line, int) else c.original_line
            lines.append(f"- {c.path}" + (f", line {line}" if isinstance(line, int) else "") + f": {c.body}")
        return "\n".join(lines)

    @activity.defn
    @durable_rate_limits
    async def ci_report(self, q: CiQuery) -> str:
        """The failing checks of other apps on a commit: names, summaries, output and annotations."""
        gh = await self.repo(q.repo)
        resp = await gh.gh.rest.checks.async_list_for_ref(q.repo.owner, q.repo.name, q.head_sha, per_page=50)
        parts = []
        for run in resp.parsed_data.check_runs:
            if run.name == CHECK_NAME or run.conclusion not in ("failure", "timed_out"):
                continue
            out = run.output
            part = [f"## {run.name}: {run.conclusion}"]
            for text in (out.title, out.summary, out.text):
                if text:
                    part.append(str(text)[-4000:])
            if out.annotations_count:
                notes = await gh.gh.rest.checks.async_list_annotations(q.repo.owner, q.repo.name, run.id)
                for a in notes.parsed_data[:30]:
                    part.append(f"- {a.path}:{a.start_line}: {a.annotation_level}: {a.message}")
            parts.append("\n".join(part))
        return "\n\n".join(parts) or "The failing checks reported no details."

    @activity.defn
    @durable_rate_limits
    async def load_issue(self, q: LoadIssueInput) -> LoadedIssue:
        gh = await self.repo(q.repo)
        repo = await gh.repository()
        issue = await gh.issue(q.issue_number)
        base = q.base_branch or repo.default_branch
        run_id = (
            (activity.info().workflow_id or "") if self.store is not None and activity.in_activity() else ""
        )
        if self.store is not None and run_id.startswith("otto/"):
            record = {
                "number": q.issue_number,
                "title": issue.title,
                "body": issue.body or "",
                "author": issue.user.login if issue.user else "unknown",
                "html_url": issue.html_url,
            }
            key = f"{run_key(run_id)}/issue.json"
            await asyncio.to_thread(put_quietly, self.store, key, json.dumps(record))
        return LoadedIssue(
            title=issue.title,
            body=issue.body or "",
            author=issue.user.login if issue.user else "unknown",
            html_url=issue.html_url,
            state=issue.state,
            default_branch=repo.default_branch,
            clone_url=repo.clone_url,
            config_text=await gh.config_text(base),
            private=bool(repo.private),
        )
