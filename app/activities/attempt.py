"""One task attempt, as one heartbeating activity: worktree → agent → commit → verify → push → draft PR.

Its result is bounded (summary, log tail, counts, sha, PR); transcripts and full logs stay in the worker's
artifact dir. Re-running it is safe: the branch is resumed, the PR and the check run are looked up first.

Surviving a dead worker: once the agent's change is committed it is pushed to the task branch as work in
progress (before verification) and its sha, the agent's summary and usage go into the heartbeat details.
A retried activity attempt (the worker died, its heartbeats stopped) that finds the branch still at that
sha skips the agent and continues from verification; otherwise it starts over in a fresh worktree.

Humans pushing to the branch: every push carries a lease on the head Otto last saw. When it is refused,
Otto fetches, rebases its own new commits onto the human's head and pushes with a lease on that head; on
a conflict the attempt ends with an error saying so. Nothing is ever forced over someone else's commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from app import prompts
from app.activities.github import CheckConclusion, repo_client
from app.agent.loop import Agent, AgentResult, Transcript
from app.agent.tools import CommandTool, EditorTool
from app.artifacts import (
    ArtifactStore,
    append_learning,
    attempt_prefix,
    mirrored,
    run_key,
    store_from_settings,
)
from app.contracts.io import ListFilesInput, RebaseInput, RepoFiles, TaskInput, TaskResult
from app.contracts.messages import RunMessage
from app.domain.context import ContextPolicy
from app.domain.links import attempt_url
from app.domain.logs import tail
from app.domain.progress import Outcome, failure_signature, made_progress
from app.domain.redact import redact
from app.domain.render import render_pr_body
from app.domain.run import RunState, TaskStatus
from app.domain.sanitize import quote_untrusted
from app.domain.usage import BudgetExhausted, Usage
from app.github_auth import GitHubApp, GitIdentity
from app.llm import LLM, ModelError
from app.sandbox import Mounts, Sandbox, SandboxUnavailable
from app.sandbox.bwrap import WORKSPACE
from app.settings import Settings
from app.verify import VerifyPlan, VerifyResult, resolve_plan, run_verify
from app.workspace import MergeConflict, PushRejected, Workspace, WorkspaceError, Worktree
from app.workspace.checkouts import SANDBOX_OBJECTS

log = logging.getLogger("otto.attempt")

LOG_TAIL_BYTES = 3_000
HEARTBEAT_EVERY_S = 1.0  # the SDK throttles what it sends; beating often gets a cancel delivered promptly
LEARNING_CHARS = 600
PUSH_REBASES = 3  # a human pushing again and again while Otto rebases: give up after this many


class HumanPushed(Exception):
    """Someone else's commits on the task branch conflict with Otto's; nothing was pushed or forced."""


class ResumePoint(BaseModel):
    """What a dead activity attempt left in its heartbeat details: its work-in-progress push."""

    sha: str
    summary: str = ""
    usage: Usage = Usage()


def resume_point(details: object) -> ResumePoint | None:
    """The work-in-progress push recorded in the last heartbeat details, if any."""
    if not isinstance(details, dict) or not isinstance(details.get("wip_sha"), str):
        return None
    try:
        return ResumePoint(
            sha=details["wip_sha"],
            summary=str(details.get("summary") or ""),
            usage=Usage.model_validate(details.get("usage") or {}),
        )
    except ValueError:
        return None


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


@contextlib.asynccontextmanager
async def heartbeating(progress: dict[str, object]) -> AsyncIterator[None]:
    """Heartbeat every few seconds (with the current progress) while blocking work runs in threads."""

    async def beat() -> None:
        while True:
            activity.heartbeat(dict(progress))
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
        self.store = store or store_from_settings(settings)
        self.client = client
        self.settings = settings
        self.app = app
        self.llm = llm
        self.workspace = workspace
        self.sandbox = sandbox

    def secrets(self) -> list[str]:
        return self.app.cached_tokens() + self.settings.secret_values()

    @activity.defn
    async def list_repo_files(self, inp: ListFilesInput) -> RepoFiles:
        token = await self.app.installation_token(inp.repo.installation_id)
        try:
            mirror = await asyncio.to_thread(
                self.workspace.sync_mirror, inp.repo.full_name, inp.clone_url, token
            )
            files = await asyncio.to_thread(self.workspace.list_files, mirror, inp.branch)
        except WorkspaceError as e:
            raise ApplicationError(
                f"Could not read the repository: {redact(str(e), self.secrets())}", type="WorkspaceError"
            ) from e
        return RepoFiles(files=files[:2000], total=len(files))

    @activity.defn
    async def rebase_branch(self, inp: RebaseInput) -> str | None:
        """Rebase a dependent's branch onto the base branch after its dependency was squash/rebase-merged and
        push it with a lease. Returns the new head, or None when the rebase conflicts (nothing is pushed)."""
        ws = self.workspace
        token = await self.app.installation_token(inp.repo.installation_id)
        identity = await self.app.bot_identity(inp.repo.installation_id)
        try:
            mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
            remote = await asyncio.to_thread(ws.remote_branch_sha, mirror, inp.branch)
            if remote is None:
                return None
            name = f"{safe_name(inp.run_id)}-rebase-{safe_name(inp.branch)}"
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
            raise ApplicationError(
                f"Rebasing {inp.branch} failed: {redact(str(e), self.secrets())}", type="WorkspaceError"
            ) from e

    @activity.defn
    async def execute_task(self, inp: TaskInput) -> TaskResult:
        progress: dict[str, object] = {"task": inp.task.id, "attempt": inp.attempt, "stage": "workspace"}
        prefix = attempt_prefix(inp.run_id, inp.task.id, inp.attempt)
        # artifacts are written to a scratch dir and mirrored to the store; a retried activity (e.g. on
        # another worker after this one died) starts from what the store has
        scratch = self.settings.scratch_dir / f"{run_key(prefix)}-{activity.info().attempt}"
        async with (
            heartbeating(progress),
            mirrored(
                self.store,
                scratch,
                prefix,
                hydrate=activity.info().attempt > 1,
                every_s=self.settings.artifact_sync_s,
            ) as artifacts,
        ):
            try:
                result = await self._execute(inp, progress, artifacts)
                await self._write_context(inp, result)
                return result
            except SandboxUnavailable as e:
                raise ApplicationError(
                    f"Otto will not run this task's commands: {e}",
                    type="SandboxUnavailable",
                    non_retryable=True,
                ) from e
            except WorkspaceError as e:
                raise ApplicationError(
                    f"git failed for task {inp.task.id}: {redact(str(e), self.secrets())}",
                    type="WorkspaceError",
                    non_retryable=True,
                ) from e
            except ModelError as e:
                raise ApplicationError(
                    f"Task {inp.task.id}: {e}.", type="ModelError", non_retryable=True
                ) from e

    async def _execute(self, inp: TaskInput, progress: dict[str, object], artifacts: Path) -> TaskResult:
        s = self.settings
        ws = self.workspace
        await asyncio.to_thread(self.sandbox.ensure_available)  # fail closed before touching anything
        token = await self.app.installation_token(inp.repo.installation_id)
        identity = await self.app.bot_identity(inp.repo.installation_id)

        info = activity.info()
        resume = resume_point(info.heartbeat_details[-1]) if info.heartbeat_details else None
        mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
        remote_sha = await asyncio.to_thread(ws.remote_branch_sha, mirror, inp.branch)
        if resume is not None and resume.sha != remote_sha:
            resume = None  # the branch moved since (or was deleted): start over
        worktree = await asyncio.to_thread(
            ws.create_worktree,
            mirror,
            f"{safe_name(inp.run_id)}-{inp.task.id}-{inp.attempt}",
            inp.base_branch,
            [] if remote_sha else inp.dependency_branches,
            inp.branch if remote_sha else None,
            identity,
        )
        try:
            root = worktree.path
            mounts = self._mounts(worktree)
            verify_plan = resolve_plan(root, inp.config.setup, inp.config.verify)
            progress["stage"] = "agent"
            agent = Agent(
                self.llm,
                editor=EditorTool(
                    root,
                    output_limit=s.command_output_limit,
                    alias=WORKSPACE if self.sandbox.enabled else None,
                    owner=self.sandbox.owner,
                ),
                shell=CommandTool(
                    self.sandbox,
                    mounts,
                    s.command_timeout_s,
                    s.command_output_limit,
                    _git_identity_env(identity),
                ),
                system=prompts.render(
                    "agent_system",
                    denied=", ".join(inp.config.paths_denied) or "(none)",
                    workspace=WORKSPACE if self.sandbox.enabled else "the repository root",
                ),
                # a later attempt is a new conversation, told apart in logs and scripted scenarios
                task_id=inp.task.id if inp.attempt == 1 else f"{inp.task.id}.{inp.attempt}",
                model=inp.model,
                max_steps=s.agent_max_steps,
                transcript=Transcript(artifacts / "transcript.jsonl", self.secrets()),
                on_step=lambda step: progress.update(step=step),
                budget_usd=inp.budget_left_usd,
                max_tokens=s.agent_max_tokens,
                max_tokens_limit=s.agent_max_tokens_limit,
                context=ContextPolicy.for_model(
                    inp.model,
                    s.agent_context_threshold_tokens,
                    s.agent_context_keep_tool_results,
                    s.agent_max_tokens_limit,
                ),
            )
            budget_note = ""
            prior_usage = Usage()
            if resume is not None:
                # a previous attempt of this activity pushed the agent's work before it died: verify it
                result = AgentResult(resume.summary, 0, "resumed", Usage())
                prior_usage = resume.usage
                progress.update(wip_sha=resume.sha, summary=resume.summary, usage=resume.usage.model_dump())
            else:
                try:
                    result = await agent.run(self._prompt(inp, verify_plan))
                except BudgetExhausted as e:
                    budget_note = f"stopped: the run's budget is spent ({e})"
                    result = AgentResult(
                        "The agent was stopped because the run's budget is spent.",
                        agent.steps,
                        "budget",
                        agent.usage,
                    )
                new_sha = await self._commit(worktree, inp, identity, "")
                if new_sha is None and remote_sha is None:
                    return TaskResult(
                        task_id=inp.task.id,
                        status=TaskStatus.ERROR,
                        summary=result.summary,
                        budget_exhausted=bool(budget_note),
                        error=budget_note
                        or (f"{result.note}; " if result.note else "")
                        + "the agent made no changes, so there is nothing to push",
                        usage=agent.usage,
                        learning=_learning(inp, "made no change", result.summary),
                    )
                if new_sha is not None:
                    # work in progress on the branch, so a retry after a dead worker can resume from here
                    progress["stage"] = "push (work in progress)"
                    await self._check_stop(inp.run_id)
                    try:
                        remote_sha = await self._push(worktree, inp, mirror, token, identity, remote_sha)
                    except HumanPushed as e:
                        return self._human_pushed(inp, result.summary, agent.usage, str(e))
                    progress.update(
                        wip_sha=remote_sha, summary=result.summary[:2000], usage=agent.usage.model_dump()
                    )
                    activity.heartbeat(dict(progress))

            progress["stage"] = "verify"
            verified = await self._verify(mounts, inp, verify_plan, artifacts, 0)
            rounds, stop_note = 0, ""
            while not verified.passed and not budget_note:
                if rounds >= inp.config.max_fix_rounds:
                    stop_note = f"stopped after {rounds} fix round(s): the limit"
                    break
                if agent.exhausted:
                    why = agent.ended or "the agent's step limit"
                    stop_note = f"stopped after {rounds} fix round(s): {why}"
                    break
                rounds += 1
                progress.update(stage=f"fix round {rounds}")
                prompt = _fix_prompt(verified, rounds, inp.config.max_fix_rounds)
                if not agent.messages:  # resumed: a new conversation needs the task too
                    prompt = self._prompt(inp, verify_plan) + "\n\n" + prompt
                try:
                    result = await agent.run(prompt)
                except BudgetExhausted as e:
                    budget_note = f"stopped in fix round {rounds}: the run's budget is spent ({e})"
                    break
                await self._commit(worktree, inp, identity, f" (fix round {rounds})")
                again = await self._verify(mounts, inp, verify_plan, artifacts, rounds)
                progressed = made_progress(_outcome(verified), _outcome(again))
                verified = again
                if not progressed and not again.passed:
                    stop_note = f"stopped after {rounds} fix round(s): the last one made no progress"
                    break
            log = verified.log
            (artifacts / "summary.md").write_text(
                redact(result.summary, self.secrets()) + "\n", encoding="utf-8"
            )
            _write_agent_report(artifacts, agent.steps, result)

            progress["stage"] = "push"
            await self._check_stop(inp.run_id)
            head = await asyncio.to_thread(ws.head_sha, worktree)
            if head != remote_sha:  # fix rounds added commits (the agent's own were pushed already)
                try:
                    pushed = await self._push(worktree, inp, mirror, token, identity, remote_sha)
                except HumanPushed as e:
                    return self._human_pushed(inp, result.summary, prior_usage + agent.usage, str(e))
                if pushed != head:  # rebased onto a human's commits: check what is on the branch now
                    verified = await self._verify(mounts, inp, verify_plan, artifacts, rounds)
                    log = verified.log
                head = pushed
            pr_base = inp.pr_base or inp.base_branch
            files = [f.path for f in await asyncio.to_thread(ws.changed_files, worktree, pr_base)]
            diff = await asyncio.to_thread(ws.pr_diff, worktree, pr_base)
            (artifacts / "diff.patch").write_text(redact(diff, self.secrets()), encoding="utf-8")
            link = attempt_url(s.public_url, inp.run_id, inp.task.id, inp.attempt)

            progress["stage"] = "pull request"
            gh = await repo_client(self.app, inp.repo)
            log_tail = tail(log, LOG_TAIL_BYTES)
            body = redact(
                render_pr_body(
                    run_id=inp.run_id,
                    issue_number=inp.issue_number,
                    task=inp.task,
                    summary=result.summary,
                    files=files,
                    verify_passed=verified.passed,
                    no_checks=verified.no_checks,
                    failures=verified.failures,
                    commands=verified.commands,
                    log_tail=log_tail,
                    attempt=inp.attempt,
                    fix_rounds=rounds,
                    refused=[r.describe() for r in worktree.refused],
                    attempt_url=link,
                ),
                self.secrets(),
            )
            pr = await gh.upsert_draft_pr(
                head=inp.branch,
                base=pr_base,
                title=f"[Otto #{inp.issue_number}] {inp.task.title}",
                body=body,
            )
            conclusion: CheckConclusion = (
                "neutral" if verified.no_checks else ("success" if verified.passed else "failure")
            )
            await gh.upsert_check_run(
                head_sha=head,
                conclusion=conclusion,
                title="Checks passed" if verified.passed else "Checks failed",
                summary=f"`{'`, `'.join(verified.commands) or 'no checks found'}`"
                + (f" — {verified.failures} failing" if verified.failures else "")
                + (f" — {budget_note or stop_note}" if budget_note or stop_note else ""),
                text=f"```\n{log}\n```",
                details_url=link,
            )
            status = TaskStatus.PASSED if verified.passed else TaskStatus.FAILED
            return TaskResult(
                task_id=inp.task.id,
                status=status,
                summary=result.summary,
                budget_exhausted=bool(budget_note),
                error=budget_note or stop_note,
                fix_rounds=rounds,
                verify_passed=verified.passed,
                verify_log_tail=log_tail,
                failures=verified.failures,
                head_sha=head,
                pr_number=pr.number,
                pr_url=pr.url,
                files_changed=files,
                refused_changes=[r.describe() for r in worktree.refused],
                usage=prior_usage + agent.usage,
                learning=_learning(inp, status.value, result.summary),
            )
        finally:
            await asyncio.to_thread(ws.remove_worktree, worktree)

    async def _push(
        self,
        worktree: Worktree,
        inp: TaskInput,
        mirror: Path,
        token: str,
        identity: GitIdentity,
        lease: str | None,
    ) -> str:
        """Push HEAD with a lease on ``lease`` (the head Otto last saw; None: the branch must not exist).

        Refused because someone else pushed: fetch, rebase the commits after ``lease`` onto their head and
        push with a lease on that head (a few times at most). A conflict raises :class:`HumanPushed`."""
        ws = self.workspace
        upstream = lease or worktree.start_sha
        for _ in range(PUSH_REBASES):
            try:
                return await asyncio.to_thread(ws.push, worktree, inp.clone_url, token, inp.branch, lease)
            except PushRejected:
                await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
                theirs = await asyncio.to_thread(ws.remote_branch_sha, mirror, inp.branch)
                if theirs is None or theirs == lease:
                    raise  # refused for another reason (e.g. a protected branch)
                try:
                    await asyncio.to_thread(ws.rebase_onto, worktree, inp.branch, upstream, identity)
                except MergeConflict:
                    raise HumanPushed(
                        f"someone else pushed to {inp.branch} (now at {theirs[:7]}) while this attempt ran, "
                        "and Otto's commits conflict with theirs; nothing was forced and Otto's work was "
                        "not pushed"
                    ) from None
                upstream = lease = theirs
        raise HumanPushed(
            f"{inp.branch} kept moving while Otto rebased onto it; nothing was forced and Otto's work was "
            "not pushed"
        )

    def _human_pushed(self, inp: TaskInput, summary: str, usage: Usage, note: str) -> TaskResult:
        return TaskResult(
            task_id=inp.task.id,
            status=TaskStatus.ERROR,
            summary=summary,
            error=note,
            usage=usage,
            learning=_learning(inp, "not pushed: a human pushed", summary),
        )

    async def _check_stop(self, inp_run_id: str) -> None:
        if await self._stop_requested(inp_run_id):
            raise ApplicationError(
                "the run was stopped; nothing more is pushed", type="Stopped", non_retryable=True
            )

    async def _write_context(self, inp: TaskInput, result: TaskResult) -> None:
        """The run's learnings as they accrue, one line per finished attempt: ``context.md`` in the store."""
        if not result.learning:
            return
        try:
            await asyncio.to_thread(
                append_learning,
                self.store,
                inp.run_id,
                inp.task.id,
                inp.attempt,
                redact(result.learning, self.secrets()),
            )
        except Exception:  # an artifact must not fail the task it describes
            log.warning("could not record the learning of %s", inp.task.id, exc_info=True)

    async def _commit(
        self, worktree: Worktree, inp: TaskInput, identity: GitIdentity, suffix: str
    ) -> str | None:
        message = (
            f"{inp.task.title}{suffix}\n\n"
            f"Part of #{inp.issue_number} (Otto task {inp.task.id}, attempt {inp.attempt})."
        )
        return await asyncio.to_thread(
            self.workspace.commit_all, worktree, message, identity, inp.config.paths_denied
        )

    async def _verify(
        self, mounts: Mounts, inp: TaskInput, plan: VerifyPlan, artifacts: Path, round_no: int
    ) -> VerifyResult:
        s = self.settings
        network = s.sandbox_setup_network == "always" or (
            s.sandbox_setup_network == "repo" and inp.config.network == "setup"
        )
        result: VerifyResult = await asyncio.to_thread(
            run_verify,
            self.sandbox,
            mounts,
            plan,
            s.verify_timeout_s,
            s.verify_log_limit,
            setup_network=network,
        )
        result.log = redact(result.log, self.secrets())
        (artifacts / f"verify.{round_no}.log").write_text(result.log, encoding="utf-8")
        return result

    def _mounts(self, wt: Worktree) -> Mounts:
        objects = ((wt.objects, SANDBOX_OBJECTS),) if self.sandbox.enabled else ()
        return Mounts(workdir=wt.path, home=wt.home, tmp=wt.tmp, ro_binds=objects)

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

    def _prompt(self, inp: TaskInput, verify_plan: VerifyPlan) -> str:
        return prompts.render(
            "agent_user",
            task=inp.task,
            issue_number=inp.issue_number,
            repo=inp.repo.full_name,
            issue_title=quote_untrusted("issue title", inp.issue_title, limit=500),
            dependencies=inp.task.depends_on,
            learnings=quote_untrusted("learnings", inp.learnings) if inp.learnings else "",
            guidance=quote_untrusted("guidance", inp.guidance) if inp.guidance else "",
            route_context=quote_untrusted("pilot note", inp.route_context) if inp.route_context else "",
            attempt=inp.attempt,
            verify_commands=verify_plan.setup + verify_plan.verify,
        )


def _write_agent_report(artifacts: Path, steps: int, result: AgentResult) -> None:
    """``agent.json``: how the conversation went (stop reason and note, usage, each time it was shrunk)."""
    report = {**result.report(), "steps": steps}
    (artifacts / "agent.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _outcome(v: VerifyResult) -> Outcome:
    return Outcome(passed=v.passed, failures=v.failures, signature=failure_signature(v.log))


def _fix_prompt(v: VerifyResult, round_no: int, limit: int) -> str:
    failing = f"{v.failures} failing" if v.failures is not None else "failed"
    return (
        f"The repository's checks failed after your change ({failing}; fix round {round_no} of {limit}). "
        "The end of their output:\n\n"
        + quote_untrusted("verify log", tail(v.log, LOG_TAIL_BYTES * 2))
        + "\n\nFind the cause, fix it, run the checks again, and answer with a short summary of the fix."
    )


def _learning(inp: TaskInput, outcome: str, summary: str) -> str:
    text = " ".join(summary.split())
    if len(text) > LEARNING_CHARS:
        text = text[:LEARNING_CHARS] + "…"
    return f"- {inp.task.id} ({inp.task.title}; {outcome}): {text}"


def _git_identity_env(identity: GitIdentity) -> dict[str, str]:
    """Commits the agent makes itself are the bot's too."""
    return {
        "GIT_AUTHOR_NAME": identity.name,
        "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name,
        "GIT_COMMITTER_EMAIL": identity.email,
    }


def artifacts_path(settings: Settings, run_id: str) -> Path:
    return settings.artifacts_dir / safe_name(run_id)
