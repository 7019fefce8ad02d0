"""One task attempt, as one heartbeating activity: worktree → agent → commit → verify → push → draft PR.

Its result is bounded (summary, log tail, counts, sha, PR); transcripts and full logs stay in the worker's
artifact dir. Re-running it is safe: the branch is resumed, the PR and the check run are looked up first.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from app import prompts
from app.activities.agent import Transcript, run_agent
from app.activities.github import CheckConclusion, RepoGitHub
from app.activities.verify import VerifyPlan, VerifyResult, detect_commands, run_verify
from app.activities.workspace import Workspace, WorkspaceError
from app.domain.logs import tail
from app.domain.redact import redact
from app.domain.render import render_pr_body
from app.domain.run import RepoRef, TaskInput, TaskResult, TaskStatus
from app.domain.sanitize import quote_untrusted
from app.domain.usage import Usage
from app.github_auth import GitHubApp, GitIdentity
from app.llm import LLM, ModelError
from app.settings import Settings

LOG_TAIL_BYTES = 3_000
HEARTBEAT_EVERY_S = 10.0


class ListFilesInput(BaseModel):
    repo: RepoRef
    clone_url: str
    branch: str


class RepoFiles(BaseModel):
    files: list[str]
    total: int


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
    def __init__(self, settings: Settings, app: GitHubApp, llm: LLM, workspace: Workspace) -> None:
        self.settings = settings
        self.app = app
        self.llm = llm
        self.workspace = workspace

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
    async def execute_task(self, inp: TaskInput) -> TaskResult:
        progress: dict[str, object] = {"task": inp.task.id, "attempt": inp.attempt, "stage": "workspace"}
        async with heartbeating(progress):
            try:
                return await self._execute(inp, progress)
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

    async def _execute(self, inp: TaskInput, progress: dict[str, object]) -> TaskResult:
        s = self.settings
        ws = self.workspace
        token = await self.app.installation_token(inp.repo.installation_id)
        identity = await self.app.bot_identity(inp.repo.installation_id)
        artifacts = s.artifacts_dir / safe_name(inp.run_id) / inp.task.id / f"attempt-{inp.attempt}"
        artifacts.mkdir(parents=True, exist_ok=True)

        mirror = await asyncio.to_thread(ws.sync_mirror, inp.repo.full_name, inp.clone_url, token)
        remote_sha = await asyncio.to_thread(ws.remote_branch_sha, mirror, inp.branch)
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
            verify_plan = (
                VerifyPlan(setup=inp.config.setup, verify=inp.config.verify)
                if inp.config.verify
                else detect_commands(root)
            )
            progress["stage"] = "agent"
            result = await run_agent(
                self.llm,
                root=root,
                system=prompts.render("agent_system", denied=", ".join(inp.config.paths_denied) or "(none)"),
                prompt=self._prompt(inp, verify_plan),
                task_id=inp.task.id,
                model=inp.model,
                max_steps=s.agent_max_steps,
                command_timeout_s=s.command_timeout_s,
                output_limit=s.command_output_limit,
                env={**s.command_env(), **_git_identity_env(identity)},
                transcript=Transcript(artifacts / "transcript.jsonl", self.secrets()),
                on_step=lambda step: progress.update(stage="agent", step=step),
            )
            usage: Usage = result.usage
            (artifacts / "summary.md").write_text(result.summary + "\n", encoding="utf-8")

            progress["stage"] = "commit"
            message = (
                f"{inp.task.title}\n\n"
                f"Part of #{inp.issue_number} (Otto task {inp.task.id}, attempt {inp.attempt})."
            )
            new_sha = await asyncio.to_thread(ws.commit_all, worktree, message, identity)
            if new_sha is None and remote_sha is None:
                return TaskResult(
                    task_id=inp.task.id,
                    status=TaskStatus.ERROR,
                    summary=result.summary,
                    error="the agent made no changes, so there is nothing to push",
                    usage=usage,
                )

            progress["stage"] = "verify"
            verified: VerifyResult = await asyncio.to_thread(
                run_verify, root, verify_plan, s.verify_timeout_s, s.verify_log_limit, s.command_env()
            )
            log = redact(verified.log, self.secrets())
            (artifacts / "verify.log").write_text(log, encoding="utf-8")

            progress["stage"] = "push"
            head = await asyncio.to_thread(ws.push, worktree, inp.clone_url, token, inp.branch, remote_sha)
            files = [f.path for f in await asyncio.to_thread(ws.changed_files, worktree, inp.base_branch)]

            progress["stage"] = "pull request"
            gh = RepoGitHub(await self.app.installation_client(inp.repo.installation_id), inp.repo)
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
                ),
                self.secrets(),
            )
            pr = await gh.upsert_draft_pr(
                head=inp.branch,
                base=inp.base_branch,
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
                + (f" — {verified.failures} failing" if verified.failures else ""),
                text=f"```\n{log}\n```",
            )
            return TaskResult(
                task_id=inp.task.id,
                status=TaskStatus.PASSED if verified.passed else TaskStatus.FAILED,
                summary=result.summary,
                verify_passed=verified.passed,
                verify_log_tail=log_tail,
                failures=verified.failures,
                head_sha=head,
                pr_number=pr.number,
                pr_url=pr.url,
                files_changed=files,
                usage=usage,
            )
        finally:
            await asyncio.to_thread(ws.remove_worktree, worktree)

    def _prompt(self, inp: TaskInput, verify_plan: VerifyPlan) -> str:
        return prompts.render(
            "agent_user",
            task=inp.task,
            issue_number=inp.issue_number,
            repo=inp.repo.full_name,
            issue_title=quote_untrusted("issue title", inp.issue_title, limit=500),
            dependencies=inp.task.depends_on,
            learnings=inp.learnings,
            guidance=quote_untrusted("maintainer guidance", inp.guidance) if inp.guidance else "",
            attempt=inp.attempt,
            verify_commands=verify_plan.setup + verify_plan.verify,
        )


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
