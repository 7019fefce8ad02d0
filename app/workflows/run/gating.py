"""The gate at a batch boundary with failures: the pilot's decision (retry with a strategy, skip, replan),
validated by the model activity and applied by ``app.domain.piloting``; replanning when the pilot is off or
fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.io import PilotInput, ReplanInput, ReplyInput
    from app.domain.pilot import PilotDecision
    from app.domain.piloting import apply_decision
    from app.domain.render import render_pilot_analysis
    from app.domain.run import TaskRecord, TaskStatus
    from app.domain.scheduling import NEEDS_DECISION, add_tasks, pending
    from app.workflows.explain import explain
    from app.workflows.run.context import Run
    from app.workflows.run.flow import pilot_may_reach

Attempt = Callable[..., Awaitable[TaskRecord]]


async def gate(run: Run, failed: list[str], attempt: Attempt) -> None:
    """Decide on failed tasks before the next batch: pilot (retry/skip/replan), or straight to replan."""
    while failed and pending(run.state) and not run.stopped():
        if not run.m.config.pilot:
            await replan(run, failed, "the gate pilot is off for this repository (`pilot: false`)")
            return
        try:
            result = await run.model_call(
                act.PILOT,
                PilotInput(
                    model_input=run.model_input(),
                    plan_summary=run.state.plan_summary,
                    tasks=run.state.tasks,
                    failed=failed,
                    pending=[r.task.id for r in pending(run.state)],
                    decisions=run.state.decisions,
                    learnings=run.state.learnings,
                    retries_used=run.state.retries_used,
                    max_retries=run.inp.limits.max_pilot_retries,
                ),
            )
        except ActivityError as e:
            run.spend_failed(e)
            if run.budget_hit(e):
                return
            run.state.notice(f"🧭 Gate pilot unavailable ({explain(e)}); replanning instead.")
            await replan(run, failed, f"the gate pilot failed: {explain(e)}")
            return
        run.spend(result.usage)
        failed = await carry_out(run, result.decision, attempt)


async def carry_out(run: Run, decision: PilotDecision, attempt: Attempt) -> list[str]:
    plan = apply_decision(run.state, decision)
    for d in decision.tasks:  # the analysis goes on the failed task's PR
        rec = run.state.record(d.task_id)
        if rec.pr_number is not None and pilot_may_reach(run, rec):  # it read every task of the set
            await run.github(
                act.REPLY,
                ReplyInput(
                    repo=run.repo_of(rec),
                    number=rec.pr_number,
                    key=f"pilot run={run.state.run_id} task={d.task_id} n={len(run.state.decisions)}",
                    body=render_pilot_analysis(d, attempt=rec.attempts),
                ),
            )
    await run.publish()
    if plan.retries:
        await asyncio.gather(
            *(
                attempt(
                    run,
                    tid,
                    guidance=strategy if pilot_may_reach(run, run.state.record(tid)) else "",
                    trigger="gate pilot's retry",
                )
                for tid, strategy in plan.retries
            )
        )
    if plan.replan:
        await replan(run, plan.replan, "the gate pilot asked for a new plan")
    return [tid for tid, _ in plan.retries if run.state.record(tid).status in NEEDS_DECISION]


async def replan(run: Run, failed: list[str], reason: str) -> None:
    replaced = [*failed, *(r.task.id for r in pending(run.state))]
    try:
        result = await run.model_call(
            act.REPLAN,
            ReplanInput(
                model_input=run.model_input(),
                tasks=run.state.tasks,
                failed=failed,
                replaced=replaced,
                reason=reason,
                learnings=run.state.learnings,
            ),
        )
    except ActivityError as e:
        run.spend_failed(e)
        if run.budget_hit(e):
            return
        run.state.notice(f"🗺️ Replanning failed ({explain(e)}); the remaining tasks are skipped.")
        for tid in replaced:
            rec = run.state.record(tid)
            if rec.status == TaskStatus.PENDING:
                rec.status = TaskStatus.SKIPPED
                rec.note = "skipped: replanning failed"
        await run.publish()
        return
    run.spend(result.usage)
    for tid in replaced:
        rec = run.state.record(tid)
        if rec.status in (TaskStatus.PENDING, *NEEDS_DECISION):
            rec.status = TaskStatus.SKIPPED
            rec.note = "replaced by a new plan"
    add_tasks(run.state, result.tasks, first_batch=run.state.batches_run)
    run.state.notice(
        f"🗺️ Replanned ({reason}): "
        + (", ".join(f"{t.id} {t.title}" for t in result.tasks) if result.tasks else "nothing more to do")
    )
    await run.publish()
