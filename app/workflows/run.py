"""RunWorkflow: one per issue (id ``otto/<repo-id>/<issue>``), the system of record for a run.

classify → plan → batches of task attempts, with the gate pilot at batch boundaries when tasks failed →
waiting for review, where `/otto retry` and `/otto stop` keep reaching it. Deterministic: every side effect
is an activity; the status comment is edited in place whenever the state changes, and every exit path ends
with a final state and a reason in it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from app.activities.attempt import TaskActivities
    from app.activities.github import GitHubActivities
    from app.activities.intake import IntakeActivities
    from app.activities.model import ModelActivities
    from app.contracts.io import (
        BranchInput,
        CiQuery,
        CloseIssueInput,
        CommentReaction,
        GateInput,
        ListFilesInput,
        LoadIssueInput,
        MergeInput,
        ModelInput,
        PilotInput,
        PublishStatus,
        ReactInput,
        RebaseInput,
        ReplanInput,
        ReplyInput,
        RetargetInput,
        TaskInput,
        TaskResult,
    )
    from app.contracts.messages import (
        CiSignal,
        PullSignal,
        RetryRequest,
        ReviewSignal,
        RunInput,
        StopRequest,
        Trigger,
    )
    from app.domain.pilot import PilotDecision, dependents_of
    from app.domain.plan import Plan, PlannedTask, batches, branch_name
    from app.domain.render import render_pilot_analysis
    from app.domain.repo_config import RepoConfig, RepoConfigError, parse_repo_config
    from app.domain.run import IssueContext, RunPhase, RunState, TaskRecord, TaskStatus
    from app.domain.usage import Usage, run_budget, worst_case_cost
    from app.workflows.github_calls import github
    from app.workflows.options import GIT, GITHUB, MODEL, NON_RETRYABLE, explain

LEARNINGS_KEPT = 12
DONE_WITH_BRANCH = (TaskStatus.PASSED, TaskStatus.FAILED, TaskStatus.MERGED)
RESOLVED = (TaskStatus.MERGED, TaskStatus.ABANDONED, TaskStatus.SKIPPED)
NEEDS_DECISION = (TaskStatus.FAILED, TaskStatus.ERROR)


def _is_budget(e: ActivityError) -> bool:
    return isinstance(e.cause, ApplicationError) and e.cause.type == "BudgetExhausted"


def _is_sandbox_unavailable(e: ActivityError) -> bool:
    return isinstance(e.cause, ApplicationError) and e.cause.type == "SandboxUnavailable"


class RunEnded(Exception):
    """A normal early end (needs_info, bad config): the state already says why."""


@workflow.defn
class RunWorkflow:
    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self.inp = inp
        ui = inp.limits.temporal_ui_url
        run_id = workflow.info().workflow_id
        self.state = RunState(
            run_id=run_id,
            repo=inp.repo,
            issue_number=inp.issue_number,
            temporal_ui_url=f"{ui.rstrip('/')}/namespaces/{workflow.info().namespace}/workflows/{run_id}"
            if ui
            else None,
        )
        self.triggers = 0
        self._publish_lock = asyncio.Lock()
        self.config = RepoConfig()
        self.context: IssueContext | None = None
        self.model_input: ModelInput | None = None
        self.running: dict[str, asyncio.Task[None]] = {}
        self.inbox: list[RetryRequest | ReviewSignal | PullSignal | CiSignal] = []
        self._merge_lock = asyncio.Lock()
        self.budget_spent = False
        self.halt_reason = ""  # set when no task can run on this worker pool (no sandbox): the run ends
        self.slot_granted = False
        self.holding_slot = False
        self.queue_position: int | None = None
        self._queue_news = False
        self.commands_in_flight = 0
        self._command_tasks: set[asyncio.Task[None]] = set()

    # --- signals and queries ------------------------------------------------------------------------
    @workflow.signal
    async def trigger(self, trigger: Trigger) -> None:
        self.triggers += 1
        if self.triggers > 1:
            self.state.notices.append(
                f"@{trigger.sender} added the `{trigger.label}` label again while this run is active; "
                "it is already running, so nothing new was started."
            )
            await self.publish()

    @workflow.signal
    def granted(self) -> None:
        self.slot_granted = True

    @workflow.signal
    def queued(self, position: int) -> None:
        if position != self.queue_position:
            self.queue_position = position
            self._queue_news = True

    @workflow.signal
    def retry(self, request: RetryRequest) -> None:
        self.inbox.append(request)

    @workflow.signal
    def review(self, signal: ReviewSignal) -> None:
        self.inbox.append(signal)

    @workflow.signal
    def pull_changed(self, signal: PullSignal) -> None:
        self.inbox.append(signal)

    @workflow.signal
    def ci_failed(self, signal: CiSignal) -> None:
        self.inbox.append(signal)

    @workflow.signal
    def stop(self, request: StopRequest) -> None:
        if self.state.stop_requested_by is None:
            self.state.stop_requested_by = request.sender
            for task in self.running.values():
                task.cancel()  # the activity is cancelled at its next heartbeat; we wait for it to end

    @workflow.signal
    async def refresh(self, payload: dict[str, str]) -> None:
        await self.publish()

    @workflow.query
    def status(self) -> RunState:
        return self.state

    # --- the run ------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: RunInput) -> RunState:
        commands = asyncio.create_task(self._command_loop())
        try:
            await self._run()
        except RunEnded:
            pass
        except asyncio.CancelledError:
            self.state.finish(RunPhase.CANCELLED, "The run was cancelled.")
            await self.publish()
            raise
        except ActivityError as e:
            self.state.finish(RunPhase.FAILED, explain(e))
        except Exception as e:  # a bug inside a step must still end visibly
            self.state.finish(
                RunPhase.FAILED, f"Otto hit an internal error and stopped: {type(e).__name__}: {e}"
            )
        commands.cancel()
        await self._release_slot()
        await self.publish()
        return self.state

    def _stopped(self) -> bool:
        return self.state.stop_requested_by is not None

    async def _run(self) -> None:
        repo, number = self.inp.repo, self.inp.issue_number
        await github(
            GitHubActivities.react_to_issue, ReactInput(repo=repo, issue_number=number, content="eyes")
        )
        await self._acquire_slot()
        if self._stopped():
            return
        self.state.phase = RunPhase.PLANNING
        await self.publish()

        issue = await github(GitHubActivities.load_issue, LoadIssueInput(repo=repo, issue_number=number))
        try:
            self.config = parse_repo_config(issue.config_text)
        except RepoConfigError as e:
            self.state.finish(RunPhase.FAILED, f"{e}. Fix the file and add the label again.")
            raise RunEnded from e
        self._set_budget()
        base = self.config.base_branch or issue.default_branch
        files = await workflow.execute_activity_method(
            TaskActivities.list_repo_files,
            ListFilesInput(repo=repo, clone_url=issue.clone_url, branch=base),
            **self._cpu_opts(),
        )
        labeled = self.inp.trigger  # the text the maintainer saw when labeling, not a later edit
        self.context = IssueContext(
            title=labeled.issue_title if labeled.issue_title is not None else issue.title,
            body=labeled.issue_body if labeled.issue_body is not None else issue.body,
            author=issue.author,
            html_url=issue.html_url,
            base_branch=base,
            clone_url=issue.clone_url,
            config=self.config,
            repo_files=files.files,
            repo_files_total=files.total,
        )
        limits = self.inp.limits
        self.model_input = ModelInput(
            repo=repo,
            issue_number=number,
            context=self.context,
            model=self.config.model or limits.model,
            max_tasks=min(self.config.max_tasks or limits.max_tasks, limits.max_tasks),
        )

        classified = await workflow.execute_activity_method(
            ModelActivities.classify, self._model_input(), **self._model_opts()
        )
        self._spend(classified.usage)
        c = classified.classification
        self.state.classification_summary = c.summary
        if not c.actionable:
            self.state.questions = c.questions or [
                "What exactly should change, and how will we know it works?"
            ]
            self.state.finish(RunPhase.NEEDS_INFO, "This issue isn't actionable yet. " + (c.summary or ""))
            raise RunEnded

        try:
            planned = await workflow.execute_activity_method(
                ModelActivities.plan, self._model_input(), **self._model_opts()
            )
        except ActivityError as e:
            self._spend_failed(e)
            raise
        self._spend(planned.usage)
        plan = Plan(summary=planned.plan_summary, tasks=planned.tasks)
        self.state.plan_summary = plan.summary
        self._add_tasks(plan.tasks, first_batch=0)
        self.state.phase = RunPhase.RUNNING
        await self.publish()

        await self._execute_plan()

        if self.halt_reason and not self._stopped():
            self.state.finish(RunPhase.FAILED, self.halt_reason)
            raise RunEnded
        if not self._stopped():
            pushed = [r for r in self.state.tasks if r.pr_number is not None]
            if self.budget_spent:
                for r in self._pending():
                    r.status = TaskStatus.SKIPPED
                    r.note = "not started: the run's budget is spent"
            if not pushed:
                reason = self._budget_message() if self.budget_spent else "No task produced a pull request"
                self.state.finish(RunPhase.FAILED, reason + "; see the task notes above.")
                raise RunEnded
            self.state.phase = RunPhase.WAITING_REVIEW
            self.state.reason = (
                f"{len(pushed)} draft PR(s) are ready for review. Approve a PR to merge it; "
                "comment `/otto retry <guidance>` on a PR to run its task again."
            )
            if self.budget_spent:
                self.state.reason = self._budget_message() + ". " + self.state.reason
            await self._release_slot()
            await self.publish()
            await workflow.wait_condition(lambda: self._stopped() or self._all_resolved())
            if not self._stopped():
                await self._conclude()
                return
        await workflow.wait_condition(lambda: not self.running)
        self.state.finish(
            RunPhase.CANCELLED, f"Stopped by @{self.state.stop_requested_by}; nothing more is pushed."
        )

    # --- scheduling ---------------------------------------------------------------------------------
    def _add_tasks(self, tasks: list[PlannedTask], first_batch: int) -> None:
        new_ids = {t.id for t in tasks}
        among_new = [
            t.model_copy(update={"depends_on": [d for d in t.depends_on if d in new_ids]}) for t in tasks
        ]
        levels = batches(Plan(tasks=among_new)) if tasks else []  # dependencies on earlier tasks are met
        level_of = {tid: i for i, level in enumerate(levels) for tid in level}
        for t in tasks:
            self.state.tasks.append(
                TaskRecord(
                    task=t, batch=first_batch + level_of[t.id], branch=branch_name(self.inp.issue_number, t)
                )
            )

    def _pending(self) -> list[TaskRecord]:
        return [r for r in self.state.tasks if r.status == TaskStatus.PENDING]

    def _ready(self) -> list[TaskRecord]:
        """Pending tasks whose dependencies all produced a branch, in the pilot's preferred order."""
        done = {r.task.id for r in self.state.tasks if r.status in DONE_WITH_BRANCH}
        ready = [r for r in self._pending() if all(d in done for d in r.task.depends_on)]
        order = self.state.preferred_order
        return sorted(ready, key=lambda r: order.index(r.task.id) if r.task.id in order else len(order))

    def _skip_blocked(self) -> None:
        """Pending tasks whose dependency will never produce a branch are skipped, with the reason."""
        changed = True
        while changed:
            changed = False
            status = {r.task.id: r.status for r in self.state.tasks}
            for r in self._pending():
                dead = [
                    d for d in r.task.depends_on if status.get(d) in (TaskStatus.ERROR, TaskStatus.SKIPPED)
                ]
                if dead:
                    r.status = TaskStatus.SKIPPED
                    r.note = f"skipped: depends on {', '.join(dead)}, which produced no usable branch"
                    changed = True

    async def _execute_plan(self) -> None:
        while not self._stopped() and not self.budget_spent and not self.halt_reason:
            self._skip_blocked()
            ready = self._ready()
            if not ready:
                break
            self.state.batches_run += 1
            await self._run_batch([r.task.id for r in ready])
            failed = [
                tid for tid in (r.task.id for r in ready) if self.state.record(tid).status in NEEDS_DECISION
            ]
            if failed and self._pending() and not self._stopped() and not self.budget_spent:
                if not self.halt_reason:
                    await self._gate(failed)
        await self.publish()

    async def _run_batch(self, task_ids: list[str]) -> None:
        gate = asyncio.Semaphore(max(1, self.inp.limits.max_parallel_tasks))
        share = self._budget_left() / max(1, len(task_ids))  # tasks running side by side split what's left

        async def one(task_id: str) -> None:
            async with gate:
                if not self._stopped() and not self.budget_spent and not self.halt_reason:
                    await self._attempt(task_id, budget=share)

        await asyncio.gather(*(one(t) for t in task_ids))

    # --- one task attempt ---------------------------------------------------------------------------
    async def _attempt(self, task_id: str, guidance: str = "", budget: float | None = None) -> TaskRecord:
        assert self.context is not None
        rec = self.state.record(task_id)
        rec.status = TaskStatus.RUNNING
        rec.attempts += 1
        rec.note = ""
        await self.publish()
        task_input = TaskInput(
            run_id=self.state.run_id,
            repo=self.inp.repo,
            issue_number=self.inp.issue_number,
            issue_title=self.context.title,
            base_branch=self.context.base_branch,
            clone_url=self.context.clone_url,
            task=rec.task,
            branch=rec.branch,
            dependency_branches=[self.state.record(d).branch for d in rec.task.depends_on],
            attempt=rec.attempts,
            config=self.config,
            model=self.config.model or self.inp.limits.model,
            guidance=guidance,
            learnings="\n".join(self.state.learnings),
            route_context=self.state.route_context.get(task_id, ""),
            pr_base=self._pr_base(rec),
            budget_left_usd=budget if budget is not None else self._budget_left() / (1 + len(self.running)),
        )
        rec.pr_base = task_input.pr_base
        call = asyncio.create_task(self._execute(task_input))
        self.running[task_id] = call
        try:
            await call
        except asyncio.CancelledError:
            if not self._stopped():
                raise
            rec.status = TaskStatus.ERROR
            rec.note = "stopped before it finished; nothing more is pushed"
        finally:
            del self.running[task_id]
        await self.publish()
        return rec

    async def _execute(self, task_input: TaskInput) -> None:
        rec = self.state.record(task_input.task.id)
        limits = self.inp.limits
        try:
            result = await workflow.execute_activity_method(
                TaskActivities.execute_task,
                task_input,
                task_queue=limits.cpu_task_queue,
                start_to_close_timeout=timedelta(seconds=limits.task_attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=limits.heartbeat_timeout_s),
                retry_policy=RetryPolicy(maximum_attempts=2, non_retryable_error_types=NON_RETRYABLE),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except asyncio.CancelledError:
            rec.status = TaskStatus.ERROR
            rec.note = "stopped before it finished; nothing more is pushed"
            return
        except ActivityError as e:
            rec.status = TaskStatus.ERROR
            rec.note = explain(e)
            if _is_sandbox_unavailable(e):
                self.halt_reason = rec.note
            return
        self._apply(rec, result)

    def _apply(self, rec: TaskRecord, result: TaskResult) -> None:
        if result.budget_exhausted:
            self.budget_spent = True
        rec.status = result.status
        rec.summary = result.summary
        rec.failures = result.failures
        rec.fix_rounds = result.fix_rounds
        rec.verify_log_tail = result.verify_log_tail
        rec.refused_changes = result.refused_changes
        rec.head_sha = result.head_sha or rec.head_sha
        rec.pr_number = result.pr_number or rec.pr_number
        rec.pr_url = result.pr_url or rec.pr_url
        rec.note = result.error
        rec.usage = rec.usage + result.usage
        self._spend(result.usage)
        if result.learning:
            self.state.learnings = [*self.state.learnings, result.learning][-LEARNINGS_KEPT:]

    # --- the gate pilot -----------------------------------------------------------------------------
    async def _gate(self, failed: list[str]) -> None:
        """Decide on failed tasks before the next batch: pilot (retry/skip/replan), or straight to replan."""
        while failed and self._pending() and not self._stopped():
            if not self.config.pilot:
                await self._replan(failed, "the gate pilot is off for this repository (`pilot: false`)")
                return
            assert self.model_input is not None
            try:
                result = await workflow.execute_activity_method(
                    ModelActivities.pilot,
                    PilotInput(
                        model_input=self._model_input(),
                        plan_summary=self.state.plan_summary,
                        tasks=self.state.tasks,
                        failed=failed,
                        pending=[r.task.id for r in self._pending()],
                        decisions=self.state.decisions,
                        learnings=self.state.learnings,
                        retries_used=self.state.retries_used,
                        max_retries=self.inp.limits.max_pilot_retries,
                    ),
                    **self._model_opts(),
                )
            except ActivityError as e:
                self._spend_failed(e)
                if _is_budget(e):
                    self.budget_spent = True
                    return
                self.state.notices.append(f"🧭 Gate pilot unavailable ({explain(e)}); replanning instead.")
                await self._replan(failed, f"the gate pilot failed: {explain(e)}")
                return
            self._spend(result.usage)
            failed = await self._apply_decision(result.decision, failed)

    async def _apply_decision(self, decision: PilotDecision, failed: list[str]) -> list[str]:
        self.state.decisions = [*self.state.decisions, decision][-5:]
        summary = decision.summary or ", ".join(f"{d.task_id}: {d.action}" for d in decision.tasks)
        self.state.notices.append(f"🧭 Gate pilot: {summary}")
        for d in decision.tasks:  # the analysis goes on the failed task's PR
            rec = self.state.record(d.task_id)
            if rec.pr_number is not None:
                await github(
                    GitHubActivities.reply,
                    ReplyInput(
                        repo=self.inp.repo,
                        number=rec.pr_number,
                        key=f"pilot run={self.state.run_id} task={d.task_id} n={len(self.state.decisions)}",
                        body=render_pilot_analysis(d, attempt=rec.attempts),
                    ),
                )
        for tid, text in decision.route_context.items():
            self.state.route_context[tid] = text
        if decision.reorder:
            self.state.preferred_order = list(decision.reorder)
        depends = {r.task.id: list(r.task.depends_on) for r in self.state.tasks}
        to_replan: list[str] = []
        to_retry: list[tuple[str, str]] = []
        for d in decision.tasks:
            if d.action == "retry":
                self.state.retries_used[d.task_id] = self.state.retries_used.get(d.task_id, 0) + 1
                to_retry.append((d.task_id, d.strategy))
            elif d.action == "skip":
                rec = self.state.record(d.task_id)
                rec.status = TaskStatus.SKIPPED
                rec.note = "skipped by the gate pilot"
                for dep in dependents_of(d.task_id, depends):
                    dependent = self.state.record(dep)
                    if dependent.status != TaskStatus.PENDING:
                        continue
                    if dep in decision.route_context:  # routed around the skipped task
                        dependent.task = dependent.task.model_copy(
                            update={"depends_on": [x for x in dependent.task.depends_on if x != d.task_id]}
                        )
                    else:
                        dependent.status = TaskStatus.SKIPPED
                        dependent.note = f"skipped: depends on {d.task_id}, which the gate pilot skipped"
            else:
                to_replan.append(d.task_id)
        await self.publish()
        if to_retry:
            await asyncio.gather(*(self._attempt(tid, guidance=strategy) for tid, strategy in to_retry))
        if to_replan:
            await self._replan(to_replan, "the gate pilot asked for a new plan")
        return [tid for tid, _ in to_retry if self.state.record(tid).status in NEEDS_DECISION]

    async def _replan(self, failed: list[str], reason: str) -> None:
        assert self.model_input is not None
        replaced = [*failed, *(r.task.id for r in self._pending())]
        try:
            result = await workflow.execute_activity_method(
                ModelActivities.replan,
                ReplanInput(
                    model_input=self._model_input(),
                    tasks=self.state.tasks,
                    failed=failed,
                    replaced=replaced,
                    reason=reason,
                    learnings=self.state.learnings,
                ),
                **self._model_opts(),
            )
        except ActivityError as e:
            self._spend_failed(e)
            if _is_budget(e):
                self.budget_spent = True
                return
            self.state.notices.append(f"🗺️ Replanning failed ({explain(e)}); the remaining tasks are skipped.")
            for tid in replaced:
                rec = self.state.record(tid)
                if rec.status == TaskStatus.PENDING:
                    rec.status = TaskStatus.SKIPPED
                    rec.note = "skipped: replanning failed"
            await self.publish()
            return
        self._spend(result.usage)
        for tid in replaced:
            rec = self.state.record(tid)
            if rec.status in (TaskStatus.PENDING, *NEEDS_DECISION):
                rec.status = TaskStatus.SKIPPED
                rec.note = "replaced by a new plan"
        self._add_tasks(result.tasks, first_batch=self.state.batches_run)
        self.state.notices.append(
            f"🗺️ Replanned ({reason}): "
            + (", ".join(f"{t.id} {t.title}" for t in result.tasks) if result.tasks else "nothing more to do")
        )
        await self.publish()

    # --- human commands -----------------------------------------------------------------------------
    async def _command_loop(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self.inbox))
            event = self.inbox.pop(0)
            self.commands_in_flight += 1
            task = asyncio.create_task(self._handle(event))
            self._command_tasks.add(task)
            task.add_done_callback(self._command_tasks.discard)

    async def _handle(self, event: RetryRequest | ReviewSignal | PullSignal | CiSignal) -> None:
        try:
            if isinstance(event, RetryRequest):
                await self._human_retry_inner(event)
            elif isinstance(event, ReviewSignal):
                await self._on_review(event)
            elif isinstance(event, PullSignal):
                await self._on_pull_changed(event)
            else:
                await self._on_ci_failed(event)
        finally:
            self.commands_in_flight -= 1
            self.state.events_handled += 1

    async def _human_retry_inner(self, request: RetryRequest) -> None:
        repo = self.inp.repo
        number = request.pr_number or self.inp.issue_number

        async def react(content: str) -> None:
            if request.comment_id is not None:
                await github(
                    GitHubActivities.react_to_comment,
                    CommentReaction(repo=repo, comment_id=request.comment_id, content=content),  # type: ignore[arg-type]
                )

        key = f"{request.reason} comment={request.comment_id} n={len(self.state.notices)}"

        async def reply(body: str) -> None:
            await github(GitHubActivities.reply, ReplyInput(repo=repo, number=number, key=key, body=body))

        try:
            rec = self.state.record(request.task_id)
        except KeyError:
            await reply(f"This run has no task `{request.task_id}`.")
            return
        if self._stopped():
            await reply("This run was stopped; label the issue again to start a new one.")
            await react("-1")
            return
        if rec.status == TaskStatus.RUNNING or request.task_id in self.running or self.context is None:
            await reply(f"Task `{rec.task.id}` is already running; nothing new was started.")
            return
        await self._reload_config()
        if self._budget_left() < worst_case_cost(self.config.model or self.inp.limits.model, 20_000, 8192):
            await reply(self._budget_message() + "; raise `budget_usd` in `.github/otto.yml` and retry.")
            await react("-1")
            return
        self.budget_spent = False
        await react("eyes")
        strategy = next(
            (d.decision(rec.task.id) for d in reversed(self.state.decisions) if d.decision(rec.task.id)), None
        )
        guidance = "\n\n".join(
            part
            for part in (
                f"From @{request.sender}: {request.guidance}" if request.guidance else "",
                f"The gate pilot's latest strategy: {strategy.strategy}"
                if strategy and strategy.strategy
                else "",
            )
            if part
        )
        why = {"command": "asked to retry", "review": "requested changes on", "ci": "CI failed on"}[
            request.reason
        ]
        self.state.notices.append(f"🔁 @{request.sender} {why} {rec.task.id}.")
        rec = await self._attempt(rec.task.id, guidance=guidance)
        head = (rec.head_sha or "")[:7]
        if rec.status == TaskStatus.PASSED:
            await react("+1")
            await reply(f"Pushed {head} for `{rec.task.id}` (attempt {rec.attempts}); Otto's checks pass.")
        else:
            await react("-1")
            await reply(
                f"Attempt {rec.attempts} of `{rec.task.id}`: {rec.status.value}. "
                + (rec.note or "See the `otto/verify` check run for the log.")
            )

    # --- reviews, merges, CI ---------------------------------------------------------------------------
    def _pr_base(self, rec: TaskRecord) -> str:
        """Stacked on its dependency's branch while it has exactly one unmerged dependency."""
        assert self.context is not None
        unmerged = [d for d in rec.task.depends_on if self.state.record(d).status != TaskStatus.MERGED]
        if len(unmerged) == 1:
            return self.state.record(unmerged[0]).branch
        return self.context.base_branch

    def _all_resolved(self) -> bool:
        recs = self.state.tasks
        merged = any(r.status == TaskStatus.MERGED for r in recs)
        open_ = [
            r
            for r in recs
            if r.status not in RESOLVED and not (r.status == TaskStatus.ERROR and not r.pr_number)
        ]
        return merged and not open_ and not self.running and self.commands_in_flight == 0

    async def _say(self, number: int, key: str, body: str) -> None:
        await github(
            GitHubActivities.reply, ReplyInput(repo=self.inp.repo, number=number, key=key, body=body)
        )

    async def _on_review(self, s: ReviewSignal) -> None:
        try:
            rec = self.state.record(s.task_id)
        except KeyError:
            return
        if s.state == "changes_requested":
            if not self.config.review_feedback:
                return
            await self._human_retry_inner(
                RetryRequest(
                    task_id=s.task_id,
                    guidance=s.guidance,
                    sender=s.reviewer,
                    pr_number=s.pr_number,
                    reason="review",
                )
            )
            return
        if rec.status == TaskStatus.MERGED:
            return
        rec.approved_sha, rec.approved_by = s.commit_id, s.reviewer
        if s.commit_id != rec.head_sha:
            await self._say(
                s.pr_number,
                f"review={s.review_id}",
                f"@{s.reviewer} approved {(s.commit_id or '?')[:7]}, but the head of this pull request is "
                f"now {(rec.head_sha or '?')[:7]}. Nothing was merged: please approve the current head.",
            )
            return
        await self._try_merge(rec)

    async def _try_merge(self, rec: TaskRecord) -> None:
        follow_ups: list[TaskRecord] = []
        async with self._merge_lock:
            if rec.status in RESOLVED or rec.status == TaskStatus.RUNNING or rec.pr_number is None:
                return
            if rec.approved_sha is None or rec.approved_sha != rec.head_sha:
                return
            unmerged = [d for d in rec.task.depends_on if self.state.record(d).status != TaskStatus.MERGED]
            if unmerged:
                rec.waiting_on = unmerged
                prs = ", ".join(f"#{self.state.record(d).pr_number or d}" for d in unmerged)
                await self._say(
                    rec.pr_number,
                    f"waiting sha={rec.approved_sha}",
                    f"Approved. This will merge after {prs}.",
                )
                await self.publish()
                return
            outcome = await github(
                GitHubActivities.merge_task_pull,
                MergeInput(
                    repo=self.inp.repo,
                    pr_number=rec.pr_number,
                    approved_sha=rec.approved_sha,
                    method=self.config.merge_method,
                    title=rec.task.title,
                ),
            )
            if outcome.result in ("merged", "already_merged"):
                follow_ups = await self._merged(rec, outcome.merge_sha)
            elif outcome.result == "head_moved":
                moved_from = rec.approved_sha
                rec.approved_sha = None
                await self._say(
                    rec.pr_number,
                    f"moved sha={moved_from}",
                    f"The head of this pull request moved after it was approved ({moved_from[:7]}), so "
                    "nothing was merged. Please review and approve the current head.",
                )
            elif outcome.result == "not_mergeable":
                await self._say(
                    rec.pr_number,
                    f"unmergeable sha={rec.approved_sha}",
                    f"Approved, but it can't be merged: {outcome.message}. Resolve that and approve again.",
                )
        for dependent in follow_ups:
            await self._try_merge(dependent)

    async def _merged(self, rec: TaskRecord, merge_sha: str | None) -> list[TaskRecord]:
        """Record a merge; retarget (and for squash/rebase: rebase) dependents; delete the branch."""
        assert self.context is not None
        old_head = rec.head_sha
        rec.status = TaskStatus.MERGED
        rec.merged_sha = merge_sha
        rec.waiting_on = []
        rec.note = f"merged by @{rec.approved_by}" if rec.approved_by else "merged"
        base = self.context.base_branch
        ready: list[TaskRecord] = []
        for dep in self.state.tasks:
            if rec.task.id not in dep.task.depends_on or dep.pr_number is None or dep.status in RESOLVED:
                continue
            if dep.pr_base == rec.branch:
                new_base = self._pr_base(dep)
                await github(
                    GitHubActivities.retarget_pull,
                    RetargetInput(repo=self.inp.repo, pr_number=dep.pr_number, base=new_base),
                )
                dep.pr_base = new_base
            if self.config.merge_method != "merge" and old_head and dep.status != TaskStatus.RUNNING:
                new_head = await workflow.execute_activity_method(
                    TaskActivities.rebase_branch,
                    RebaseInput(
                        run_id=self.state.run_id,
                        repo=self.inp.repo,
                        clone_url=self.context.clone_url,
                        branch=dep.branch,
                        upstream_sha=old_head,
                        onto=base,
                        expected_sha=dep.head_sha,
                    ),
                    **self._cpu_opts(),
                )
                if new_head is None:
                    dep.note = (
                        f"rebasing onto {base} after #{rec.pr_number} conflicted; needs a human or a retry"
                    )
                    continue
                if new_head != dep.head_sha:
                    dep.head_sha = new_head
                    if dep.approved_sha:
                        await self._say(
                            dep.pr_number,
                            f"rebased sha={new_head}",
                            f"Rebased onto `{base}` after #{rec.pr_number} was "
                            f"{self.config.merge_method}-merged. The approval was for the old head; "
                            f"approve {new_head[:7]} to merge.",
                        )
            if dep.approved_sha and dep.approved_sha == dep.head_sha and dep.waiting_on:
                ready.append(dep)
        if self.inp.limits.delete_merged_branches:
            await github(GitHubActivities.delete_branch, BranchInput(repo=self.inp.repo, branch=rec.branch))
        await self.publish()
        return ready

    async def _on_pull_changed(self, s: PullSignal) -> None:
        try:
            rec = self.state.record(s.task_id)
        except KeyError:
            return
        if s.action == "synchronize":
            if s.head_sha != rec.head_sha:
                rec.head_sha = s.head_sha
                rec.note = f"@{s.sender} pushed {s.head_sha[:7]}; approve the new head to merge"
                await self.publish()
            return
        if rec.status in RESOLVED:
            return
        if s.merged:  # merged by a human on GitHub
            rec.approved_by = s.sender
            follow_ups = await self._merged(rec, None)
            for dependent in follow_ups:
                await self._try_merge(dependent)
            return
        rec.status = TaskStatus.ABANDONED
        rec.note = f"PR closed without merging by @{s.sender}"
        for dep in self.state.tasks:
            if s.task_id in dep.task.depends_on and dep.status not in RESOLVED:
                if dep.status == TaskStatus.PENDING:
                    dep.status = TaskStatus.SKIPPED
                dep.note = f"blocked: depends on {s.task_id}, whose PR was closed"
        await self.publish()

    async def _on_ci_failed(self, s: CiSignal) -> None:
        try:
            rec = self.state.record(s.task_id)
        except KeyError:
            return
        if s.head_sha != rec.head_sha or rec.status in RESOLVED or rec.status == TaskStatus.RUNNING:
            return  # an old commit, or already being worked on
        if s.head_sha in rec.ci_failed_shas:
            return  # several failing checks (check runs and their suite) on one head: one answer
        rec.ci_failed_shas.append(s.head_sha)
        if rec.ci_fix_rounds >= self.config.max_ci_fix_rounds:
            await self._say(
                s.pr_number,
                f"ci budget sha={s.head_sha}",
                f"CI ({s.app_name}) still fails on {s.head_sha[:7]}. The CI fix budget "
                f"({self.config.max_ci_fix_rounds} round(s)) is spent, so Otto stops here: over to you.",
            )
            return
        rec.ci_fix_rounds += 1
        report = await github(GitHubActivities.ci_report, CiQuery(repo=self.inp.repo, head_sha=s.head_sha))
        await self._human_retry_inner(
            RetryRequest(
                task_id=s.task_id,
                guidance=f"CI ({s.app_name}) failed on {s.head_sha[:7]} (CI fix round {rec.ci_fix_rounds} of "
                f"{self.config.max_ci_fix_rounds}):\n{report}",
                sender=s.app_name,
                pr_number=s.pr_number,
                reason="ci",
            )
        )

    async def _conclude(self) -> None:
        merged = [r for r in self.state.tasks if r.status == TaskStatus.MERGED]
        others = [r for r in self.state.tasks if r.status != TaskStatus.MERGED]
        lines = [f"🤖 Otto's run for this issue is done: {len(merged)} task(s) merged."]
        lines += [f"- {r.task.id} {r.task.title}: #{r.pr_number} merged" for r in merged]
        lines += [f"- {r.task.id} {r.task.title}: {r.status.value} {r.note}".rstrip() for r in others]
        u = self.state.usage
        lines.append(f"\n{u.calls} model calls, {u.total_tokens} tokens, ${u.cost_usd:.4f}.")
        await self._say(self.inp.issue_number, f"summary run={self.state.run_id}", "\n".join(lines))
        all_merged = not others
        if all_merged:
            await github(
                GitHubActivities.close_issue,
                CloseIssueInput(repo=self.inp.repo, issue_number=self.inp.issue_number),
            )
        self.state.finish(
            RunPhase.DONE,
            "Every task is merged; the issue is closed."
            if all_merged
            else "No task is left open; the tasks that were not merged are listed above.",
        )

    # --- the installation's slots --------------------------------------------------------------------
    async def _slot(self, action: str) -> None:
        await workflow.execute_activity_method(
            IntakeActivities.gate,
            GateInput(installation_id=self.inp.repo.installation_id, run_id=self.state.run_id, action=action),  # type: ignore[arg-type]
            **GITHUB,
        )

    async def _acquire_slot(self) -> None:
        """Wait in line when the installation already has its maximum of runs working."""
        await self._slot("acquire")
        self.holding_slot = True
        while not self.slot_granted and not self._stopped():
            await workflow.wait_condition(lambda: self.slot_granted or self._stopped() or self._queue_news)
            if self._queue_news and not self.slot_granted:
                self._queue_news = False
                self.state.phase = RunPhase.QUEUED
                self.state.reason = (
                    f"Queued: #{self.queue_position} in line. This installation already has its maximum of "
                    "runs working; this one starts as soon as one of them is done."
                )
                await self.publish()
        self.state.reason = ""

    async def _release_slot(self) -> None:
        if self.holding_slot:
            self.holding_slot = False
            await self._slot("release")

    # --- where work runs ------------------------------------------------------------------------------
    def _model_opts(self) -> dict[str, Any]:
        return {**MODEL, "task_queue": self.inp.limits.model_task_queue}

    def _cpu_opts(self) -> dict[str, Any]:
        return {**GIT, "task_queue": self.inp.limits.cpu_task_queue}

    # --- budget -------------------------------------------------------------------------------------
    def _set_budget(self) -> None:
        limits = self.inp.limits
        self.state.budget_usd = run_budget(
            self.config.budget_usd, limits.budget_usd_default, limits.budget_usd_max
        )

    def _budget_left(self) -> float:
        return (self.state.budget_usd or 0.0) - self.state.usage.cost_usd

    def _budget_message(self) -> str:
        return (
            f"The run's budget of ${self.state.budget_usd or 0:.2f} is spent "
            f"(${self.state.usage.cost_usd:.4f} used): work so far is pushed. To continue, raise "
            "`budget_usd` "
            "in `.github/otto.yml` and comment `/otto retry` on a task's pull request"
        )

    def _model_input(self) -> ModelInput:
        assert self.model_input is not None
        return self.model_input.model_copy(update={"budget_left_usd": self._budget_left()})

    async def _reload_config(self) -> None:
        """A retry sees the repository's current `.github/otto.yml` (e.g. a raised budget)."""
        issue = await github(
            GitHubActivities.load_issue,
            LoadIssueInput(repo=self.inp.repo, issue_number=self.inp.issue_number),
        )
        try:
            self.config = parse_repo_config(issue.config_text)
        except RepoConfigError as e:
            self.state.notices.append(f"⚠️ {e}; keeping the settings this run started with.")
            return
        self._set_budget()

    # --- bookkeeping --------------------------------------------------------------------------------
    def _spend(self, usage: Usage) -> None:
        self.state.usage = self.state.usage + usage

    def _spend_failed(self, e: ActivityError) -> None:
        cause = e.cause
        if isinstance(cause, ApplicationError) and cause.details:
            detail = cause.details[0]
            if isinstance(detail, dict):
                self._spend(Usage.model_validate(detail))

    async def publish(self) -> None:
        """Edit the status comment in place (created once; its id is kept in the state)."""
        async with self._publish_lock:
            comment_id = await github(GitHubActivities.publish_status, PublishStatus(state=self.state))
            self.state.status_comment_id = comment_id
