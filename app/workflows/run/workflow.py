"""RunWorkflow: one per issue (id ``otto/<repo-id>/<issue>``), the system of record for a run.

Phases: planning (``planning``) → execution in batches with the gate pilot (``execution``, ``gating``) →
waiting for review, where approvals merge and people retry or stop (``review``) → conclusion
(``conclusion``). Everything the run remembers is one serialisable object (``RunMemory``); while it waits
for review it continues as new when Temporal suggests it (or past ``run_history_max_events``), carrying that
object, so a run that waits for days keeps a small history. Human input arrives as typed signals and
validated updates; their handlers run concurrently with the phase loop, and the run only ends or continues
once every handler has finished. Deterministic: every side effect is an activity, called by its spec.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from app.contracts.io import AttemptProgress
    from app.contracts.messages import (
        BaseSignal,
        CiSignal,
        EditSignal,
        MergeRequest,
        PlanCommand,
        PullSignal,
        RetryRequest,
        RevertRequest,
        ReviewSignal,
        RunInput,
        StopRequest,
        Trigger,
    )
    from app.domain.progress import describe_stage
    from app.domain.run import RunMemory, RunPhase, RunState, TaskStatus
    from app.domain.scheduling import all_resolved, pending
    from app.workflows.explain import explain
    from app.workflows.lifecycle import installation_unavailable
    from app.workflows.run import conclusion, execution, merges, planning, review
    from app.workflows.run.context import Run, RunEnded


RELABELED_WHILE_ACTIVE = "while this run is active"  # a notice that is only true until the run ends


def never_started(state: RunState) -> None:
    """Tasks a run that ended early never reached say so (not "pending" forever)."""
    why = "the run was stopped" if state.phase == RunPhase.CANCELLED else "the run failed first"
    for r in pending(state):
        r.status = TaskStatus.SKIPPED
        r.note = f"not started — {why}"


def _initial_memory(inp: RunInput) -> RunMemory:
    if inp.carried is not None:
        return inp.carried
    info = workflow.info()
    ui = inp.limits.temporal_ui_url
    link = f"{ui.rstrip('/')}/namespaces/{info.namespace}/workflows/{info.workflow_id}" if ui else None
    return RunMemory(
        state=RunState(
            run_id=info.workflow_id, repo=inp.repo, issue_number=inp.issue_number, temporal_ui_url=link
        )
    )


@workflow.defn(name="RunWorkflow")
class RunWorkflow:
    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self.run_ = Run(inp, _initial_memory(inp))

    # --- signals, updates, query --------------------------------------------------------------------
    @workflow.signal
    async def trigger(self, trigger: Trigger) -> None:
        m = self.run_.m
        m.triggers += 1
        if m.triggers > 1:
            self.run_.state.notice(
                f"@{trigger.sender} added the `{trigger.label}` label again {RELABELED_WHILE_ACTIVE}; "
                "it is already running, so nothing new was started."
            )
            await self.run_.publish()

    @workflow.signal
    def granted(self) -> None:
        self.run_.m.slot_granted = True

    @workflow.signal
    def queued(self, position: int) -> None:
        m = self.run_.m
        if position != m.queue_position:
            m.queue_position = position
            m.queue_news = True

    @workflow.signal
    async def review(self, signal: ReviewSignal) -> None:
        await self._handled(review.on_review(self.run_, signal))

    @workflow.signal
    async def pull_changed(self, signal: PullSignal) -> None:
        await self._handled(review.on_pull_changed(self.run_, signal))

    @workflow.signal
    async def ci_failed(self, signal: CiSignal) -> None:
        await self._handled(review.on_ci_failed(self.run_, signal))

    @workflow.signal
    async def base_moved(self, signal: BaseSignal) -> None:
        await self._handled(review.on_base_moved(self.run_, signal))

    @workflow.signal
    async def issue_edited(self, edit: EditSignal) -> None:
        await self._handled(review.on_issue_edited(self.run_, edit))

    @workflow.signal
    async def refresh(self, payload: dict[str, str]) -> None:
        await self.run_.publish()

    @workflow.update
    def retry(self, request: RetryRequest) -> str:
        """Accepted at once (the validator answers refusals); the attempt runs on in the background and
        answers on the PR when it is done."""
        self.run_.spawn(self._handled(review.retry(self.run_, request)))
        return "accepted"

    @retry.validator
    def _validate_retry(self, request: RetryRequest) -> None:
        refusal = review.retry_refusal(self.run_, request)
        if refusal is not None:
            raise ValueError(refusal)

    @workflow.update
    async def stop(self, request: StopRequest) -> str:
        """Stops at once: running attempts are cancelled (their sandboxed commands killed), the status says
        "stopping" right away and "stopped by @user" when every attempt has ended."""
        state = self.run_.state
        if not request.post:
            self.run_.m.silenced = True  # GitHub refuses the App there now: write nothing more
        if state.stop_requested_by is None:
            state.stop_requested_by = request.sender
            state.stop_reason = request.reason
            for attempt in self.run_.running.values():
                attempt.cancel()  # delivered at the activity's next heartbeat; the run waits for it
            await self.run_.publish()
        return "stopping"

    @workflow.update
    def merge(self, request: MergeRequest) -> str:
        """`/otto merge`: merge a task's PR as it is, on purpose (answered at once; the merge follows)."""
        self.run_.spawn(self._handled(merges.merge_on_purpose(self.run_, request)))
        return "accepted"

    @merge.validator
    def _validate_merge(self, request: MergeRequest) -> None:
        refusal = merges.merge_refusal(self.run_, request)
        if refusal is not None:
            raise ValueError(refusal)

    @workflow.update
    def revert(self, request: RevertRequest) -> str:
        """`/otto revert`: revert PRs for what merged of a change set that merged only in part (answered at
        once; the PRs follow)."""
        self.run_.spawn(self._handled(merges.revert_merged(self.run_, request)))
        return "accepted"

    @revert.validator
    def _validate_revert(self, request: RevertRequest) -> None:
        refusal = merges.revert_refusal(self.run_)
        if refusal is not None:
            raise ValueError(refusal)

    @workflow.update
    def go(self, command: PlanCommand) -> str:
        self.run_.m.go_by = command.sender
        return "accepted"

    @go.validator
    def _validate_go(self, command: PlanCommand) -> None:
        if self.run_.state.phase != RunPhase.PLAN_REVIEW:
            raise ValueError("There is no plan waiting for approval in this run.")

    @workflow.update
    def plan(self, command: PlanCommand) -> str:
        self.run_.m.plan_feedback, self.run_.m.plan_feedback_by = command.feedback, command.sender
        return "accepted"

    @plan.validator
    def _validate_plan(self, command: PlanCommand) -> None:
        if self.run_.state.phase != RunPhase.PLAN_REVIEW:
            raise ValueError("There is no plan waiting for approval in this run.")
        if not command.feedback.strip() and self.run_.m.edited_by is None:
            raise ValueError(
                "Say what to change (`/otto plan <feedback>`), or edit the issue and say `/otto plan`."
            )

    @workflow.signal
    async def progress(self, progress: AttemptProgress) -> None:
        """Where a running attempt is (its stages, and its agent's steps now and then), for the status."""
        try:
            rec = self.run_.state.record(progress.task)
        except KeyError:
            return
        if rec.status == TaskStatus.RUNNING and rec.attempts == progress.attempt:
            p, fix_limit = progress, self.run_.m.config.max_fix_rounds
            rec.wip_sha = p.wip_sha or rec.wip_sha
            rec.stage = describe_stage(p.stage, p.step, p.max_steps, p.fix_round, fix_limit)
            await self.run_.publish()

    @workflow.query
    def status(self) -> RunState:
        return self.run_.state

    async def _handled(self, work: Awaitable[None]) -> None:
        """Human input handled; counted so tests and the UI can tell it was processed."""
        await work
        self.run_.state.events_handled += 1

    # --- the run --------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: RunInput) -> RunState:
        run = self.run_
        try:
            await self._phases()
        except RunEnded:
            pass
        except asyncio.CancelledError:  # cancelled through Temporal (not `/otto stop`): free the slot, say so
            run.state.finish(RunPhase.CANCELLED, "The run was cancelled.")
            await planning.release_slot(run)
            await run.publish()
            raise
        except ActivityError as e:
            if installation_unavailable(e):  # GitHub refuses the App there: nothing can be posted
                run.m.silenced = True
            if run.stopped():
                run.state.finish(RunPhase.CANCELLED, run.stop_message())
            else:
                run.state.finish(RunPhase.FAILED, explain(e))
        except Exception as e:  # a bug inside a step must still end visibly
            run.state.finish(
                RunPhase.FAILED, f"Otto hit an internal error and stopped: {type(e).__name__}: {e}"
            )
        if run.state.phase in (RunPhase.FAILED, RunPhase.CANCELLED):
            never_started(run.state)
        run.state.waiting = None
        run.state.notices = [n for n in run.state.notices if RELABELED_WHILE_ACTIVE not in n]
        await planning.release_slot(run)
        await run.publish_final()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not run.background)
        return run.state

    async def _phases(self) -> None:
        run = self.run_
        if not run.m.planned:
            await planning.plan(run)
            if run.stopped():
                raise run.end(RunPhase.CANCELLED, run.stop_message())
            await execution.execute_plan(run)
            await self._after_execution()
        if not run.stopped():
            await self._wait_for_review()
        if not run.stopped():
            await conclusion.conclude(run)
            return
        await workflow.wait_condition(lambda: not run.running)
        run.state.finish(RunPhase.CANCELLED, run.stop_message())

    async def _after_execution(self) -> None:
        run, state = self.run_, self.run_.state
        if run.m.halt_reason and not run.stopped():
            raise run.end(RunPhase.FAILED, run.m.halt_reason)
        if run.stopped():
            return
        pushed = [r for r in state.tasks if r.pr_number is not None]
        if run.m.budget_spent:
            for r in pending(state):
                r.status = TaskStatus.SKIPPED
                r.note = "not started: the run's budget is spent"
        if not pushed:
            reason = run.budget_message() if run.m.budget_spent else "No task produced a pull request"
            raise run.end(RunPhase.FAILED, reason + "; see the task notes above.")
        state.phase = RunPhase.WAITING_REVIEW
        state.reason = (
            "Approve a PR whose checks pass to merge it; comment `/otto retry <guidance>` on a PR to run its "
            "task again."
        )
        if run.m.budget_spent:
            state.reason = run.budget_message() + ". " + state.reason
        await planning.release_slot(run)
        await run.publish()

    async def _wait_for_review(self) -> None:
        """Until every task is resolved or the run is stopped; continues as new when the history grows."""
        run = self.run_

        def quiet() -> bool:
            return not run.running and not run.background and workflow.all_handlers_finished()

        def settled() -> bool:
            return all_resolved(run.state) and quiet()

        while True:
            await workflow.wait_condition(lambda: run.stopped() or settled() or self._history_is_long())
            if run.stopped() or settled():
                return
            await workflow.wait_condition(quiet)
            if run.stopped() or settled():
                return
            workflow.continue_as_new(run.inp.model_copy(update={"carried": run.m}))

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self.run_.inp.limits.run_history_max_events
        )
