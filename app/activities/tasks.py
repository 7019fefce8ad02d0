"""The task activities: one attempt of a task (``execute_task``, heartbeating), and the git steps around
tasks (``list_repo_files`` for the planner, ``rebase_branch`` after a squash or rebase merge)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from app.activities.attempt import Attempt, Services, Stopped, run_attempt
from app.activities.github import repo_client
from app.activities.pushes import progress_of, verify_pushed_head
from app.artifacts import (
    ArtifactStore,
    append_learning,
    attempt_prefix,
    mirrored,
    run_key,
    store_from_settings,
)
from app.contracts.failures import FailureKind
from app.contracts.io import (
    AttemptProgress,
    ListFilesInput,
    RebaseInput,
    RepoFiles,
    RevertInput,
    RevertOutcome,
    TaskInput,
    TaskResult,
    VerifyHeadInput,
    VerifyHeadResult,
)
from app.contracts.messages import RunMessage
from app.domain.outages import Service
from app.domain.redact import redact
from app.domain.run import RunState
from app.domain.usage import Usage
from app.github_auth import GitHubApp
from app.llm import LLM, ModelError, ModelUnavailable
from app.outages import Outage, as_outage, outages_are_waited_out
from app.sandbox import Sandbox, SandboxUnavailable
from app.sandbox.proc import command_scope
from app.settings import Settings
from app.workspace import DiskFull, MergeConflict, RemoteUnavailable, Workspace, WorkspaceError

log = logging.getLogger("otto.tasks")


STEP_REPORT_S = 10.0  # the agent's step reaches the run this often at most (a comment edit); a stage at once

Report = Callable[[AttemptProgress], Awaitable[None]]


@contextlib.asynccontextmanager
async def heartbeating(
    progress: AttemptProgress, every_s: float, report: Report | None = None
) -> AsyncIterator[None]:
    """Heartbeat every ``every_s`` seconds with the current progress while blocking work runs in threads
    (a cancellation — the run stopped — is delivered at the next heartbeat), and ``report`` the progress to
    the run when its stage changes (its step now and then) so the status comment shows it."""

    async def beat() -> None:
        sent: AttemptProgress | None = None
        sent_at = 0.0
        while True:
            activity.heartbeat(progress.model_dump(mode="json"))
            now = time.monotonic()
            if report is not None and progress != sent:
                moved_on = sent is None or (progress.stage, progress.fix_round) != (
                    sent.stage,
                    sent.fix_round,
                )
                if moved_on or now - sent_at >= STEP_REPORT_S:
                    sent, sent_at = progress.model_copy(), now
                    try:
                        await report(sent)
                    except Exception:  # the status is for people; the attempt goes on without it
                        log.debug("could not report the progress of %s", progress.task, exc_info=True)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def workspace_outage(e: WorkspaceError, what: str) -> Outage | None:
    """The outage behind a git failure: GitHub's remote not answering, or the worker's disk full."""
    if isinstance(e, RemoteUnavailable):
        return Outage(Service.GITHUB, e.detail, f"{what}: GitHub did not answer git ({e.detail})")
    if isinstance(e, DiskFull):
        return Outage(Service.DISK, "no space left on device", f"{what}: the worker's disk is full")
    return None


def git_headline(text: str, limit: int = 200) -> str:
    """The first line of a git failure, bounded: a status line, not git's whole stderr."""
    line = text.strip().splitlines()[0] if text.strip() else "no message"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def spent_in_heartbeat(details: Sequence[Any], inp: TaskInput) -> Usage | None:
    """What the last heartbeat of a crashed try of this activity said the attempt had spent."""
    if not details:
        return None
    try:
        progress = AttemptProgress.model_validate(details[0])
    except ValidationError:
        return None
    return progress.spent if progress.task == inp.task.id and progress.attempt == inp.attempt else None


def attempt_failed(attempt: Attempt, message: str, kind: FailureKind) -> ApplicationError:
    """The attempt's end as a non-retryable failure carrying its spend; a stop is benign (no error log)."""
    return ApplicationError(
        message,
        attempt.usage().model_dump(),
        type=kind,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN
        if kind == FailureKind.STOPPED
        else ApplicationErrorCategory.UNSPECIFIED,
    )


class TaskActivities:
    def __init__(
        self,
        settings: Settings,
        app: GitHubApp,
        llm: LLM,
        workspace: Workspace,
        sandbox: Sandbox,
        client: Client | None = None,
        store: ArtifactStore | None = None,
    ) -> None:
        self.client = client
        self.svc = Services(
            settings=settings,
            app=app,
            llm=llm,
            workspace=workspace,
            sandbox=sandbox,
            store=store or store_from_settings(settings),
            stop_requested=self._stop_requested,  # type: ignore[arg-type]
        )

    def secrets(self) -> list[str]:
        return self.svc.secrets()

    def _git_failed(self, e: WorkspaceError, what: str) -> ApplicationError:
        """A git step's failure: an outage (GitHub's remote, the disk) the workflow waits out, else the
        first line of git's words (the rest goes to the log)."""
        outage = workspace_outage(e, what)
        if outage is not None:
            return outage.failure()
        text = redact(str(e), self.secrets())
        log.warning("%s: %s", what, text)
        return ApplicationError(f"{what}: {git_headline(text)}", type=FailureKind.WORKSPACE)

    @activity.defn
    @outages_are_waited_out
    async def list_repo_files(self, inp: ListFilesInput) -> RepoFiles:
        ws = self.svc.workspace
        token = await self.svc.app.installation_token(inp.repo.installation_id)
        try:
            mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
            files = await asyncio.to_thread(ws.list_files, mirror, inp.branch)
        except WorkspaceError as e:
            raise self._git_failed(e, "Could not read the repository") from None
        return RepoFiles(files=files[:2000], total=len(files))

    @activity.defn
    @outages_are_waited_out
    async def rebase_branch(self, inp: RebaseInput) -> str | None:
        """Rebase a dependent's branch onto the base branch after its dependency was squash/rebase-merged and
        push it with a lease. Returns the new head, or None when the rebase conflicts (nothing is pushed)."""
        ws = self.svc.workspace
        token = await self.svc.app.installation_token(inp.repo.installation_id)
        identity = await self.svc.app.bot_identity(inp.repo.installation_id)
        try:
            mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
            remote = await asyncio.to_thread(ws.remote_branch_sha, mirror, inp.branch)
            if remote is None:
                return None
            name = f"{inp.run_id}-rebase-{inp.branch}"
            worktree = await asyncio.to_thread(
                ws.create_worktree, mirror, name, inp.onto, [], inp.branch, identity
            )
            try:
                try:
                    await asyncio.to_thread(ws.rebase_onto, worktree, inp.onto, inp.upstream_sha, identity)
                except MergeConflict:
                    return None
                return await asyncio.to_thread(
                    ws.push, worktree, inp.clone_url, token, inp.branch, inp.expected_sha or remote
                )
            finally:
                await asyncio.to_thread(ws.remove_worktree, worktree)
        except WorkspaceError as e:
            raise self._git_failed(e, f"Rebasing {inp.branch} failed") from None

    @activity.defn
    @outages_are_waited_out
    async def revert_merge(self, inp: RevertInput) -> RevertOutcome:
        """A branch reverting a merged task's merge commit, pushed, and a draft PR for it (looked up first:
        a retried activity opens nothing twice)."""
        ws = self.svc.workspace
        token = await self.svc.app.installation_token(inp.repo.installation_id)
        identity = await self.svc.app.bot_identity(inp.repo.installation_id)
        gh = await repo_client(self.svc.app, inp.repo)
        try:
            mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
            if await asyncio.to_thread(ws.remote_branch_sha, mirror, inp.branch) is None:
                name = f"{inp.run_id}-revert-{inp.pr_number}"
                worktree = await asyncio.to_thread(
                    ws.create_worktree, mirror, name, inp.base_branch, [], None, identity
                )
                try:
                    await asyncio.to_thread(ws.revert, worktree, inp.merge_sha, inp.merge_commit, identity)
                    await asyncio.to_thread(ws.push, worktree, inp.clone_url, token, inp.branch, None)
                finally:
                    await asyncio.to_thread(ws.remove_worktree, worktree)
        except WorkspaceError as e:
            raise self._git_failed(e, f"Reverting #{inp.pr_number}") from None
        body = (
            f"Reverts #{inp.pr_number} ({inp.title}): part of {inp.issue_ref}, a change across repositories "
            f"that merged only in part. Opened by Otto on @{inp.asked_by}'s `/otto revert`; merge it to take "
            "that part back out."
        )
        pr = await gh.upsert_draft_pr(
            head=inp.branch, base=inp.base_branch, title=f"Revert: {inp.title} (#{inp.pr_number})", body=body
        )
        return RevertOutcome(pr_number=pr.number, pr_url=pr.url)

    @activity.defn
    @outages_are_waited_out
    async def verify_head(self, inp: VerifyHeadInput) -> VerifyHeadResult:
        """A head a person pushed to a task branch: the repository's checks and its `otto/verify` check run
        (see ``app.activities.pushes``)."""
        try:
            async with heartbeating(progress_of(inp), self.svc.settings.heartbeat_every_s):
                return await verify_pushed_head(self.svc, inp, activity.info().attempt)
        except WorkspaceError as e:
            raise self._git_failed(e, f"Checking {inp.sha[:7]} on {inp.branch}") from None

    @activity.defn
    async def execute_task(self, inp: TaskInput) -> TaskResult:
        attempts: list[Attempt] = []
        try:
            return await self._execute(inp, attempts)
        except (ApplicationError, asyncio.CancelledError):
            raise
        except Exception as e:  # around the attempt: its scratch dir, its artifacts' upload (a full disk)
            outage = as_outage(e)
            if outage is None:
                raise
            spent = attempts[0].usage() if attempts else Usage()
            log.info("task %s attempt %d interrupted: %s", inp.task.id, inp.attempt, outage)
            raise outage.failure(spent, retryable=False) from None

    async def _execute(self, inp: TaskInput, attempts: list[Attempt]) -> TaskResult:
        info = activity.info()
        progress = AttemptProgress(
            task=inp.task.id, attempt=inp.attempt, max_steps=self.svc.settings.agent_max_steps
        )
        prefix = attempt_prefix(inp.run_id, inp.task.id, inp.attempt)
        s = self.svc.settings
        # artifacts are written to a scratch dir and mirrored to the store; a retried activity (e.g. on
        # another worker after this one died) starts from what the store has
        scratch = s.scratch_dir / f"{run_key(prefix)}-r{inp.resumes}-{info.attempt}"
        again = info.attempt > 1 or inp.resumes > 0
        async with (
            heartbeating(progress, s.heartbeat_every_s, self._reporter(inp.run_id)),
            mirrored(self.svc.store, scratch, prefix, hydrate=again, every_s=s.artifact_sync_s) as artifacts,
        ):
            attempt = Attempt(self.svc, inp, artifacts, info.attempt, progress)
            attempts.append(attempt)
            attempt.heartbeat_spent = spent_in_heartbeat(info.heartbeat_details, inp)
            try:
                with command_scope() as commands:
                    try:
                        result = await run_attempt(attempt)
                    except asyncio.CancelledError:
                        killed = commands.cancel()  # the sandboxed command running now ends at once
                        if killed:
                            log.info("killed %d sandboxed command(s) of a cancelled attempt", killed)
                        raise
            except asyncio.CancelledError:
                if activity.is_worker_shutdown():  # not a stop: the attempt goes back to Temporal for a retry
                    raise
                # the run was stopped. Temporal drops the details of an activity "cancelled", so the attempt
                # ends as a benign (not logged as an error) failure that carries what it spent
                log.info("task %s attempt %d stopped", inp.task.id, inp.attempt)
                raise attempt_failed(attempt, "the run was stopped", FailureKind.STOPPED) from None
            except SandboxUnavailable as e:
                message = f"Otto will not run this task's commands: {e}"
                raise attempt_failed(attempt, message, FailureKind.SANDBOX_UNAVAILABLE) from e
            except Stopped as e:
                raise attempt_failed(attempt, str(e), FailureKind.STOPPED) from e
            except ModelUnavailable as e:
                what = f"the model API did not answer the agent of task {inp.task.id} ({e.detail})"
                raise self._interrupted(attempt, Outage(Service.MODEL, e.detail, what)) from None
            except WorkspaceError as e:
                outage = workspace_outage(e, f"Task {inp.task.id}")
                if outage is not None:
                    raise self._interrupted(attempt, outage) from None
                text = redact(str(e), self.secrets())
                log.warning("git failed for task %s: %s", inp.task.id, text)
                message = f"git failed for task {inp.task.id}: {git_headline(text)}"
                raise attempt_failed(attempt, message, FailureKind.WORKSPACE) from e
            except ModelError as e:
                raise attempt_failed(attempt, f"Task {inp.task.id}: {e}.", FailureKind.MODEL) from e
            except Exception as e:
                outage = as_outage(e)
                if outage is None:
                    raise
                raise self._interrupted(attempt, outage) from None
            await self._record_learning(inp, result)
            return result

    @staticmethod
    def _interrupted(attempt: Attempt, outage: Outage) -> ApplicationError:
        """An outage ended this try: the workflow waits, then takes the attempt up again; what it spent and
        the work it could not push (see :meth:`Attempt.keep_unpushed`) carry over."""
        log.info("task %s attempt %d interrupted: %s", attempt.inp.task.id, attempt.inp.attempt, outage)
        return outage.failure(attempt.usage(), retryable=False)

    async def _record_learning(self, inp: TaskInput, result: TaskResult) -> None:
        """The run's learnings as they accrue, one line per finished attempt: ``context.md`` in the store."""
        if not result.learning:
            return
        try:
            await asyncio.to_thread(
                append_learning,
                self.svc.store,
                inp.run_id,
                inp.task.id,
                inp.attempt,
                redact(result.learning, self.secrets()),
            )
        except Exception:  # an artifact must not fail the task it describes
            log.warning("could not record the learning of %s", inp.task.id, exc_info=True)

    def _reporter(self, run_id: str) -> Report | None:
        client = self.client
        if client is None:
            return None

        async def report(progress: AttemptProgress) -> None:
            await client.get_workflow_handle(run_id).signal(RunMessage.PROGRESS, progress)

        return report

    async def _stop_requested(self, run_id: str) -> bool:
        """Look before you push: a stopped run pushes nothing (its cancel may still be on the way)."""
        if self.client is None:
            return False
        try:
            state = await self.client.get_workflow_handle(run_id).query(
                RunMessage.STATUS, result_type=RunState
            )
        except Exception:  # the run can't be asked (e.g. a standalone test): don't block the push
            return False
        return state.stop_requested_by is not None
