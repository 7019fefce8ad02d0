"""RunWorkflow: one per issue (id ``otto/<repo-id>/<issue>``), the system of record for a run.

classify → plan → batches of task attempts → waiting for review. Deterministic: every side effect is an
activity; the status comment is re-published (edited in place) whenever the state changes, and every exit
path ends with a final state and a reason in it.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from app.activities.attempt import ListFilesInput, TaskActivities
    from app.activities.github import GitHubActivities, LoadIssueInput, ReactInput
    from app.activities.model import ModelActivities, ModelInput
    from app.domain.plan import Plan, batches, branch_name
    from app.domain.repo_config import RepoConfig, RepoConfigError, parse_repo_config
    from app.domain.run import (
        IssueContext,
        PublishStatus,
        RunInput,
        RunPhase,
        RunState,
        TaskInput,
        TaskRecord,
        TaskResult,
        TaskStatus,
        Trigger,
    )
    from app.domain.usage import Usage
    from app.workflows.options import GIT, GITHUB, MODEL, explain, task_options


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
        self.stop_requested_by: str | None = None
        self._publish_lock = asyncio.Lock()
        self.config = RepoConfig()
        self.context: IssueContext | None = None

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
    def stop(self, sender: str) -> None:
        self.stop_requested_by = sender

    @workflow.query
    def status(self) -> RunState:
        return self.state

    # --- the run ------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: RunInput) -> RunState:
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
        await self.publish()
        return self.state

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
        model_input = ModelInput(
            repo=repo,
            issue_number=number,
            context=self.context,
            model=self.config.model or limits.model,
            max_tasks=min(self.config.max_tasks or limits.max_tasks, limits.max_tasks),
        )

        classified = await workflow.execute_activity_method(ModelActivities.classify, model_input, **MODEL)
        self.state.usage = self.state.usage + classified.usage
        c = classified.classification
        self.state.classification_summary = c.summary
        if not c.actionable:
            self.state.questions = c.questions or [
                "What exactly should change, and how will we know it works?"
            ]
            self.state.finish(RunPhase.NEEDS_INFO, "This issue isn't actionable yet. " + (c.summary or ""))
            raise RunEnded

        try:
            planned = await workflow.execute_activity_method(ModelActivities.plan, model_input, **MODEL)
        except ActivityError as e:
            self._count_failed_usage(e)
            raise
        self.state.usage = self.state.usage + planned.usage
        plan = Plan(summary=planned.plan_summary, tasks=planned.tasks)
        levels = batches(plan)
        self.state.plan_summary = plan.summary
        self.state.tasks = [
            TaskRecord(task=plan.task(tid), batch=i, branch=branch_name(number, plan.task(tid)))
            for i, level in enumerate(levels)
            for tid in level
        ]
        self.state.phase = RunPhase.RUNNING
        await self.publish()

        for level in levels:
            await self._run_batch(level)
            if self.stop_requested_by:
                break

        if self.stop_requested_by is None:
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
            await workflow.wait_condition(lambda: self.stop_requested_by is not None)
        self.state.finish(RunPhase.CANCELLED, f"Stopped by @{self.stop_requested_by}.")

    async def _run_batch(self, level: list[str]) -> None:
        gate = asyncio.Semaphore(max(1, self.inp.limits.max_parallel_tasks))

        async def one(task_id: str) -> None:
            async with gate:
                if self.stop_requested_by is None:
                    await self._run_task(task_id)

        await asyncio.gather(*(one(t) for t in level))

    async def _run_task(self, task_id: str) -> None:
        assert self.context is not None
        rec = self.state.record(task_id)
        blocked = [
            d
            for d in rec.task.depends_on
            if self.state.record(d).status not in (TaskStatus.PASSED, TaskStatus.FAILED)
        ]
        if blocked:
            rec.status = TaskStatus.SKIPPED
            rec.note = f"skipped: depends on {', '.join(blocked)}, which produced no branch"
            await self.publish()
            return
        rec.status = TaskStatus.RUNNING
        rec.attempts += 1
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
        )
        try:
            result = await workflow.execute_activity_method(
                TaskActivities.execute_task,
                task_input,
                **task_options(self.inp.limits.task_attempt_timeout_s),
            )
        except ActivityError as e:
            rec.status = TaskStatus.ERROR
            rec.note = explain(e)
        else:
            self._apply(rec, result)
        await self.publish()

    def _apply(self, rec: TaskRecord, result: TaskResult) -> None:
        rec.status = result.status
        rec.summary = result.summary
        rec.failures = result.failures
        rec.head_sha = result.head_sha
        rec.pr_number = result.pr_number or rec.pr_number
        rec.pr_url = result.pr_url or rec.pr_url
        rec.note = result.error
        rec.usage = rec.usage + result.usage
        self.state.usage = self.state.usage + result.usage

    def _count_failed_usage(self, e: ActivityError) -> None:
        cause = e.cause
        if isinstance(cause, ApplicationError) and cause.details:
            detail = cause.details[0]
            if isinstance(detail, dict):
                self.state.usage = self.state.usage + Usage.model_validate(detail)

    async def publish(self) -> None:
        """Edit the status comment in place (created once; its id is kept in the state)."""
        async with self._publish_lock:
            comment_id = await workflow.execute_activity_method(
                GitHubActivities.publish_status, PublishStatus(state=self.state), **GITHUB
            )
            self.state.status_comment_id = comment_id
