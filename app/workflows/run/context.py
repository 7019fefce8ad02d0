"""The run while it executes: its memory (one serialisable object), its input, what only lives in this
workflow task (running attempts, locks), and the thin effects every phase uses (publish, reply, spend)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.failures import FailureKind
    from app.contracts.io import LoadIssueInput, ModelInput, PublishStatus, ReplyInput
    from app.contracts.messages import OutagePolicy, RunInput
    from app.domain.outages import Waiting
    from app.domain.repo_config import RepoConfig, RepoConfigError, parse_repo_config
    from app.domain.run import RepoRef, RunMemory, RunPhase, RunState, TaskRecord
    from app.domain.usage import Usage, run_budget
    from app.workflows.calls import Patience, call, github, outage_of, outlast


class RunEnded(Exception):
    """A normal early end (needs_info, bad config, nothing pushed): the state already says why."""


def failed_usage(e: ActivityError) -> Usage:
    """What a failed or cancelled activity spent (the first of its error's details), else nothing."""
    cause = e.cause
    if isinstance(cause, ApplicationError | CancelledError) and cause.details:
        detail = cause.details[0]
        if isinstance(detail, dict):
            return Usage.model_validate(detail)
    return Usage()


def failure_kind(e: ActivityError) -> str | None:
    return e.cause.type if isinstance(e.cause, ApplicationError) else None


@dataclass(frozen=True)
class Where:
    """The repository a task changes, with what working there needs."""

    repo: RepoRef
    clone_url: str
    base_branch: str
    config: RepoConfig
    private: bool


class Run:
    def __init__(self, inp: RunInput, memory: RunMemory) -> None:
        self.inp = inp
        self.m = memory
        self.running: dict[str, asyncio.Task[None]] = {}  # task id → its attempt, while it runs
        self.background: set[asyncio.Task[None]] = set()  # work an update started (e.g. a retry)
        self.publish_lock = asyncio.Lock()
        self.merge_lock = asyncio.Lock()
        limits = inp.limits
        policy = OutagePolicy(
            deadline_s=limits.outage_deadline_s,
            first_wait_s=limits.outage_first_wait_s,
            max_wait_s=limits.outage_max_wait_s,
        )
        self.patience = Patience(policy, workflow.info().start_time, self.waiting, self.back)

    @property
    def state(self) -> RunState:
        return self.m.state

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def stopped(self) -> bool:
        return self.state.stop_requested_by is not None

    def where(self, rec: TaskRecord) -> Where:
        """The task's repository: the issue's, or a linked one (``repositories:``) with its own settings."""
        ctx = self.m.context
        assert ctx is not None
        link = next((x for x in self.state.linked if rec.repo and x.repo_id == rec.repo.repo_id), None)
        if rec.repo is None or link is None:
            return Where(self.inp.repo, ctx.clone_url, ctx.base_branch, self.m.config, ctx.private)
        return Where(rec.repo, link.clone_url, link.default_branch, link.config or RepoConfig(), link.private)

    def repo_of(self, rec: TaskRecord) -> RepoRef:
        return rec.repo or self.inp.repo

    def owns(self, rec: TaskRecord, repo_id: int) -> bool:
        """Whether a PR of repository ``repo_id`` can be this task's (0: said of the issue's repository by
        an older delivery). A PR body's marker is text a writer can edit: it never moves a task elsewhere."""
        if not repo_id:
            return rec.repo is None
        return repo_id == self.repo_of(rec).repo_id

    def halted(self) -> bool:
        return self.stopped() or self.m.budget_spent or bool(self.m.halt_reason)

    def end(self, phase: RunPhase, reason: str) -> RunEnded:
        self.state.finish(phase, reason)
        return RunEnded()

    # --- effects ------------------------------------------------------------------------------------
    async def publish(self) -> None:
        """Edit the status comment in place (created once; its id is kept in the state). A silenced run
        (GitHub refuses the App there now) only updates what Mission Control shows. GitHub down: waited out
        (Mission Control shows the wait meanwhile)."""
        async with self.publish_lock:
            post = not self.m.silenced
            comment_id = await self.github(
                act.PUBLISH_STATUS, PublishStatus(state=self.state, post=post), step="updating this comment"
            )
            if post:
                self.state.status_comment_id = comment_id

    async def publish_final(self) -> None:
        """The last publish of a run that ends: GitHub still down at the deadline leaves the comment as it
        was (Mission Control has the end)."""
        try:
            await self.publish()
        except ActivityError as e:
            if outage_of(e) is None:
                raise
            workflow.logger.warning("the final status of %s could not be posted: %s", self.state.run_id, e)

    async def say(self, number: int, key: str, body: str, repo: RepoRef | None = None) -> None:
        """A reply on the issue or a PR (``repo``: a task's PR in another repository)."""
        if self.m.silenced:
            return
        reply = ReplyInput(repo=repo or self.inp.repo, number=number, key=key, body=body)
        await self.github(act.REPLY, reply, step=f"answering on #{number}")

    async def say_on(self, rec: TaskRecord, key: str, body: str) -> None:
        """A reply on the task's PR, in the task's repository."""
        if rec.pr_number is not None:
            await self.say(rec.pr_number, key, body, self.repo_of(rec))

    async def github(self, spec: act.ActivitySpec[Any, Any], arg: Any, step: str = "") -> Any:
        """A GitHub call that waits out rate limits and outages (shown in the status comment meanwhile)."""
        return await github(spec, arg, patience=self.patience, step=step)

    # --- outages ------------------------------------------------------------------------------------
    async def waiting(self, waiting: Waiting) -> None:
        """Show the wait: in Mission Control at once, on GitHub when it takes the edit (one try)."""
        self.state.waiting = waiting
        if self.publish_lock.locked():  # the status itself is what can't get through: it shows it later
            return
        async with self.publish_lock:
            try:
                comment_id = await call(
                    act.PUBLISH_STATUS,
                    PublishStatus(state=self.state, post=not self.m.silenced),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    start_to_close_timeout=timedelta(seconds=15),
                )
            except ActivityError:
                return
            if not self.m.silenced:
                self.state.status_comment_id = comment_id

    async def back(self, waiting: Waiting) -> None:
        current = self.state.waiting
        if current is not None and (current.service, current.since) == (waiting.service, waiting.since):
            self.state.waiting = None
            if not self.publish_lock.locked():
                await self.publish()

    def stop_message(self) -> str:
        """The final reason of a stopped run: why it was stopped, or who stopped it."""
        return self.state.stop_reason or (
            f"Stopped by @{self.state.stop_requested_by}; nothing more is pushed."
        )

    async def model_call(self, spec: act.ActivitySpec[Any, Any], arg: Any, step: str = "") -> Any:
        """A model call that waits out the model's outages; what an interrupted call spent counts."""

        async def once() -> Any:
            try:
                return await call(spec, arg, limits=self.inp.limits)
            except ActivityError as e:
                if outage_of(e) is not None:
                    self.spend_failed(e)
                raise

        return await outlast(once, self.patience, step or spec.name)

    async def cpu_call(self, spec: act.ActivitySpec[Any, Any], arg: Any, **options: Any) -> Any:
        return await call(spec, arg, limits=self.inp.limits, **options)

    async def git_call(self, spec: act.ActivitySpec[Any, Any], arg: Any, step: str = "") -> Any:
        """A git step on the CPU queue (fetch, rebase and push) that waits out GitHub's outages."""
        return await outlast(lambda: self.cpu_call(spec, arg), self.patience, step or spec.name)

    # --- budget -------------------------------------------------------------------------------------
    def spend(self, usage: Usage) -> None:
        self.state.usage = self.state.usage + usage

    def spend_failed(self, e: ActivityError) -> None:
        """A failed (or stopped) activity reports what it spent in its details."""
        self.spend(failed_usage(e))

    def budget_hit(self, e: ActivityError) -> bool:
        if failure_kind(e) == FailureKind.BUDGET_EXHAUSTED:
            self.m.budget_spent = True
            return True
        return False

    def set_budget(self) -> None:
        limits = self.inp.limits
        self.state.budget_usd = run_budget(
            self.m.config.budget_usd, limits.budget_usd_default, limits.budget_usd_max
        )

    def budget_left(self) -> float:
        return (self.state.budget_usd or 0.0) - self.state.usage.cost_usd

    def budget_message(self) -> str:
        return (
            f"The run's budget of ${self.state.budget_usd or 0:.2f} is spent "
            f"(${self.state.usage.cost_usd:.4f} used): work so far is pushed. To continue, raise "
            "`budget_usd` in `.github/otto.yml` and comment `/otto retry` on a task's pull request"
        )

    def model_input(self) -> ModelInput:
        assert self.m.context is not None
        return ModelInput(
            repo=self.inp.repo,
            issue_number=self.inp.issue_number,
            context=self.m.context,
            model=self.m.model,
            max_tasks=self.m.max_tasks,
            budget_left_usd=self.budget_left(),
        )

    async def reload_config(self) -> None:
        """A retry sees the repository's current `.github/otto.yml` (e.g. a raised budget)."""
        issue = await self.github(
            act.LOAD_ISSUE, LoadIssueInput(repo=self.inp.repo, issue_number=self.inp.issue_number)
        )
        try:
            self.m.config = parse_repo_config(issue.config_text)
        except RepoConfigError as e:
            self.state.notice(f"⚠️ {e}; keeping the settings this run started with.")
            return
        self.set_budget()
