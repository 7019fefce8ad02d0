"""RunWorkflow: one per issue (id ``otto/<repo-id>/<issue>``), the system of record for a run.

classify → plan → batches of task attempts, with the gate pilot at batch boundaries when tasks failed →
waiting for review, where `/otto retry` and `/otto stop` keep reaching it. Deterministic: every side effect
is an activity; the status comment is edited in place whenever the state changes, and every exit path ends
with a final state and a reason in it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from app.activities.attempt import ListFilesInput, TaskActivities
    from app.activities.github import (
        CommentReaction,
        GitHubActivities,
        LoadIssueInput,
        ReactInput,
        ReplyInput,
    )
    from app.activities.model import ModelActivities, ModelInput, PilotInput, ReplanInput
    from app.domain.pilot import PilotDecision, dependents_of
    from app.domain.plan import Plan, PlannedTask, batches, branch_name
    from app.domain.render import render_pilot_analysis
    from app.domain.repo_config import RepoConfig, RepoConfigError, parse_repo_config
    from app.domain.run import (
        IssueContext,
        PublishStatus,
        RetryRequest,
        RunInput,
        RunPhase,
        RunState,
        StopRequest,
        TaskInput,
        TaskRecord,
        TaskResult,
        TaskStatus,
        Trigger,
    )
    from app.domain.usage import Usage
    from app.workflows.options import GIT, GITHUB, MODEL, NON_RETRYABLE, explain

LEARNINGS_KEPT = 12
DONE_WITH_BRANCH = (TaskStatus.PASSED, TaskStatus.FAILED)
NEEDS_DECISION = (TaskStatus.FAILED, TaskStatus.ERROR)


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
        self.retry_queue: list[RetryRequest] = []
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
    def retry(self, request: RetryRequest) -> None:
        self.retry_queue.append(request)

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
        await self.publish()
        return self.state

    def _stopped(self) -> bool:
        return self.state.stop_requested_by is not None

    async def _run(self) -> None:
        repo, number = self.inp.repo, self.inp.issue_number
        await workflow.execute_activity_method(
            GitHubActivities.react_to_issue,
            ReactInput(repo=repo, issue_number=number, content="eyes"),
            **GITHUB,
        )
        self.state.phase = RunPhase.PLANNING
        await self.publish()

        issue = await workflow.execute_activity_method(
            GitHubActivities.load_issue, LoadIssueInput(repo=repo, issue_number=number), **GITHUB
        )
        try:
            self.config = parse_repo_config(issue.config_text)
        except RepoConfigError as e:
            self.state.finish(RunPhase.FAILED, f"{e}. Fix the file and add the label again.")
            raise RunEnded from e
        base = self.config.base_branch or issue.default_branch
        files = await workflow.execute_activity_method(
            TaskActivities.list_repo_files,
            ListFilesInput(repo=repo, clone_url=issue.clone_url, branch=base),
            **GIT,
        )
        self.context = IssueContext(
            title=issue.title,
            body=issue.body,
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
            ModelActivities.classify, self.model_input, **MODEL
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
            planned = await workflow.execute_activity_method(ModelActivities.plan, self.model_input, **MODEL)
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

        if not self._stopped():
            pushed = [r for r in self.state.tasks if r.pr_number is not None]
            if not pushed:
                self.state.finish(
                    RunPhase.FAILED, "No task produced a pull request; see the task notes above."
                )
                raise RunEnded
            self.state.phase = RunPhase.WAITING_REVIEW
            self.state.reason = (
                f"{len(pushed)} draft PR(s) are ready for review. Approve a PR to merge it; "
                "comment `/otto retry <guidance>` on a PR to run its task again."
            )
            await self.publish()
            await workflow.wait_condition(self._stopped)
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
        while not self._stopped():
            self._skip_blocked()
            ready = self._ready()
            if not ready:
                break
            self.state.batches_run += 1
            await self._run_batch([r.task.id for r in ready])
            failed = [
                tid for tid in (r.task.id for r in ready) if self.state.record(tid).status in NEEDS_DECISION
            ]
            if failed and self._pending() and not self._stopped():
                await self._gate(failed)
        await self.publish()

    async def _run_batch(self, task_ids: list[str]) -> None:
        gate = asyncio.Semaphore(max(1, self.inp.limits.max_parallel_tasks))

        async def one(task_id: str) -> None:
            async with gate:
                if not self._stopped():
                    await self._attempt(task_id)

        await asyncio.gather(*(one(t) for t in task_ids))

    # --- one task attempt ---------------------------------------------------------------------------
    async def _attempt(self, task_id: str, guidance: str = "") -> TaskRecord:
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
        )
        call = asyncio.create_task(self._execute(task_input))
        self.running[task_id] = call
        try:
            await call
        except asyncio.CancelledError:
            if not self._stopped():
                raise
            rec.status = TaskStatus.ERROR
            rec.note = "stopped before it finished; nothing was pushed"
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
                start_to_close_timeout=timedelta(seconds=limits.task_attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=limits.heartbeat_timeout_s),
                retry_policy=RetryPolicy(maximum_attempts=2, non_retryable_error_types=NON_RETRYABLE),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except asyncio.CancelledError:
            rec.status = TaskStatus.ERROR
            rec.note = "stopped before it finished; nothing was pushed"
            return
        except ActivityError as e:
            rec.status = TaskStatus.ERROR
            rec.note = explain(e)
            return
        self._apply(rec, result)

    def _apply(self, rec: TaskRecord, result: TaskResult) -> None:
        rec.status = result.status
        rec.summary = result.summary
        rec.failures = result.failures
        rec.fix_rounds = result.fix_rounds
        rec.verify_log_tail = result.verify_log_tail
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
                        model_input=self.model_input,
                        plan_summary=self.state.plan_summary,
                        tasks=self.state.tasks,
                        failed=failed,
                        pending=[r.task.id for r in self._pending()],
                        decisions=self.state.decisions,
                        learnings=self.state.learnings,
                        retries_used=self.state.retries_used,
                        max_retries=self.inp.limits.max_pilot_retries,
                    ),
                    **MODEL,
                )
            except ActivityError as e:
                self._spend_failed(e)
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
                await workflow.execute_activity_method(
                    GitHubActivities.reply,
                    ReplyInput(
                        repo=self.inp.repo,
                        number=rec.pr_number,
                        key=f"pilot run={self.state.run_id} task={d.task_id} n={len(self.state.decisions)}",
                        body=render_pilot_analysis(d, attempt=rec.attempts),
                    ),
                    **GITHUB,
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
                    model_input=self.model_input,
                    tasks=self.state.tasks,
                    failed=failed,
                    replaced=replaced,
                    reason=reason,
                    learnings=self.state.learnings,
                ),
                **MODEL,
            )
        except ActivityError as e:
            self._spend_failed(e)
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
            await workflow.wait_condition(lambda: bool(self.retry_queue))
            request = self.retry_queue.pop(0)
            self.commands_in_flight += 1
            task = asyncio.create_task(self._human_retry(request))
            self._command_tasks.add(task)
            task.add_done_callback(self._command_tasks.discard)

    async def _human_retry(self, request: RetryRequest) -> None:
        try:
            await self._human_retry_inner(request)
        finally:
            self.commands_in_flight -= 1

    async def _human_retry_inner(self, request: RetryRequest) -> None:
        repo = self.inp.repo
        number = request.pr_number or self.inp.issue_number

        async def react(content: str) -> None:
            if request.comment_id is not None:
                await workflow.execute_activity_method(
                    GitHubActivities.react_to_comment,
                    CommentReaction(repo=repo, comment_id=request.comment_id, content=content),  # type: ignore[arg-type]
                    **GITHUB,
                )

        async def reply(body: str) -> None:
            await workflow.execute_activity_method(
                GitHubActivities.reply,
                ReplyInput(repo=repo, number=number, key=f"retry comment={request.comment_id}", body=body),
                **GITHUB,
            )

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
        self.state.notices.append(f"🔁 @{request.sender} asked to retry {rec.task.id}.")
        rec = await self._attempt(rec.task.id, guidance=guidance)
        if rec.status == TaskStatus.PASSED:
            await react("+1")
            await reply(
                f"Retried `{rec.task.id}` (attempt {rec.attempts}): checks pass on {rec.head_sha or 'the'}."
            )
        else:
            await react("-1")
            await reply(
                f"Retried `{rec.task.id}` (attempt {rec.attempts}): {rec.status.value}. "
                + (rec.note or "See the `otto/verify` check run for the log.")
            )

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
            comment_id = await workflow.execute_activity_method(
                GitHubActivities.publish_status, PublishStatus(state=self.state), **GITHUB
            )
            self.state.status_comment_id = comment_id
