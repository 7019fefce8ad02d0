"""Execution: the plan's dependency levels as batches of task attempts (bounded in parallel); each attempt
is one heartbeating activity; a batch that ends with failures goes to the gate pilot."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.failures import NON_RETRYABLE, FailureKind
    from app.contracts.io import LinkedMount, TaskInput, TaskResult
    from app.domain.linking import may_flow
    from app.domain.outages import Waiting
    from app.domain.run import LEARNINGS_KEPT, AttemptRecord, TaskRecord, TaskStatus
    from app.domain.scheduling import NEEDS_DECISION, pending, pr_base, ready, same_repo, skip_blocked
    from app.workflows.calls import outage_of, outlast
    from app.workflows.explain import explain
    from app.workflows.run import gating
    from app.workflows.run.context import Run, failed_usage, failure_kind
    from app.workflows.run.flow import learned_may_reach, pilot_may_reach

STOPPED_NOTE = "stopped before it finished; nothing more is pushed"


async def execute_plan(run: Run) -> None:
    while not run.halted():
        skip_blocked(run.state)
        batch = ready(run.state)
        if not batch:
            break
        run.state.batches_run += 1
        await run_batch(run, [r.task.id for r in batch])
        failed = [r.task.id for r in batch if run.state.record(r.task.id).status in NEEDS_DECISION]
        if failed and pending(run.state) and not run.halted():
            await gating.gate(run, failed, attempt)
    await run.publish()


async def run_batch(run: Run, task_ids: list[str]) -> None:
    gate = asyncio.Semaphore(max(1, run.inp.limits.max_parallel_tasks))
    share = run.budget_left() / max(1, len(task_ids))  # tasks running side by side split what's left

    async def one(task_id: str) -> None:
        async with gate:
            if not run.halted():
                await attempt(run, task_id, budget=share)

    await asyncio.gather(*(one(t) for t in task_ids))


async def attempt(
    run: Run, task_id: str, guidance: str = "", budget: float | None = None, trigger: str = ""
) -> TaskRecord:
    """One attempt of ``task_id`` (the next one), to its end or until the run is stopped. ``trigger``: why
    it runs, in words, for the PR's attempt history."""
    ctx = run.m.context
    assert ctx is not None
    rec = run.state.record(task_id)
    rec.status = TaskStatus.RUNNING
    rec.attempts += 1
    rec.note = ""
    rec.stage = ""
    rec.wip_sha = None
    trigger = trigger or ("first run" if rec.attempts == 1 else "run again")
    started, spent_before = workflow.now(), rec.usage.cost_usd
    await run.publish()
    where = run.where(rec)
    base = pr_base(run.state, rec, where.base_branch)
    stacked = next(
        (run.state.record(d) for d in rec.task.depends_on if run.state.record(d).branch == base), None
    )
    deps = [run.state.record(d) for d in rec.task.depends_on]
    task_input = TaskInput(
        run_id=run.state.run_id,
        repo=where.repo,
        issue_number=run.inp.issue_number,
        issue_title=ctx.title,
        base_branch=where.base_branch,
        clone_url=where.clone_url,
        task=rec.task,
        branch=rec.branch,
        dependency_branches=[d.branch for d in deps if same_repo(d, rec)],
        attempt=rec.attempts,
        config=where.config,
        issue_repo="" if rec.repo is None else run.inp.repo.full_name,
        model=run.m.model,
        guidance=guidance,
        learnings="\n".join(line for line in run.state.learnings if learned_may_reach(run, line, rec)),
        route_context=run.state.route_context.get(task_id, "") if pilot_may_reach(run, rec) else "",
        pr_base=base,
        budget_left_usd=budget if budget is not None else run.budget_left() / (1 + len(run.running)),
        trigger=trigger,
        history=list(rec.history),
        stacked_on=stacked.pr_number if stacked is not None else None,
        bring_in_base=rec.conflicts_at is not None,
        linked=mounts_for(run, rec, deps),
        merges_after=[
            f"{run.repo_of(d).full_name}#{d.pr_number}" for d in deps if not same_repo(d, rec) and d.pr_number
        ],
    )
    rec.pr_base = task_input.pr_base
    head_before = rec.head_sha
    execution = asyncio.create_task(execute(run, task_input))
    run.running[task_id] = execution
    try:
        await execution
    except asyncio.CancelledError:
        if not run.stopped():
            raise
        rec.status = TaskStatus.ERROR
        rec.note = STOPPED_NOTE
    finally:
        del run.running[task_id]
    rec.stage = ""
    if task_input.bring_in_base and rec.head_sha != head_before:
        rec.conflicts_at = None  # the base was merged in (and the result checked)
        conflict_settled(run, rec, f"attempt {rec.attempts} merged `{ctx.base_branch}` in")
    rec.history = [
        *rec.history,
        AttemptRecord(
            attempt=rec.attempts,
            trigger=trigger,
            outcome=outcome_words(rec),
            failures=rec.failures,
            duration_s=(workflow.now() - started).total_seconds(),
            cost_usd=rec.usage.cost_usd - spent_before,
        ),
    ]
    await run.publish()
    return rec


def mounts_for(run: Run, rec: TaskRecord, deps: list[TaskRecord]) -> list[LinkedMount]:
    """The other repositories a task's attempt reads: each whose content may flow into the task's repository
    (``may_flow``), at its default branch — or at the task branch of a dependency there."""
    ctx = run.m.context
    assert ctx is not None
    own = rec.repo.repo_id if rec.repo else 0
    target = run.where(rec)
    # a dependency there not merged yet: its task branch; merged: its repository's default branch has it
    branch_in = {
        d.repo.repo_id: d.branch
        for d in deps
        if d.repo is not None and d.head_sha and d.status != TaskStatus.MERGED
    }
    mounts = []
    for link in run.state.linked:
        if link.repo_id == own or not may_flow(link, target.private, target.repo.full_name):
            continue
        mounts.append(
            LinkedMount(
                repo=link.repo,
                clone_url=link.clone_url,
                branch=branch_in.get(link.repo_id, link.default_branch),
            )
        )
    return mounts


def conflict_settled(run: Run, rec: TaskRecord, how: str) -> None:
    """The notice that the task's PR conflicts with its base, told how that ended (it stays true)."""
    said = f"#{rec.pr_number} ({rec.task.id}) now conflicts with it"
    run.state.notices = [
        n[: n.index(said)] + f"#{rec.pr_number} ({rec.task.id}) conflicted with it; {how}."
        if said in n
        else n
        for n in run.state.notices
    ]


def outcome_words(rec: TaskRecord) -> str:
    if rec.note == STOPPED_NOTE:
        return "stopped"
    if rec.status == TaskStatus.PASSED:
        return "checks pass"
    if rec.status == TaskStatus.FAILED:
        return "checks fail"
    return "error: " + (rec.note[:80] + ("…" if len(rec.note) > 80 else "") if rec.note else "see the notes")


async def execute(run: Run, task_input: TaskInput) -> None:
    """The attempt's activity; an outage (GitHub, the model, the disk) interrupting it is waited out and the
    attempt taken up again where it was (``resumes``), what the interrupted try spent counted."""
    rec = run.state.record(task_input.task.id)
    limits = run.inp.limits
    current = task_input

    async def once() -> TaskResult:
        nonlocal current
        try:
            result: TaskResult = await run.cpu_call(
                act.EXECUTE_TASK,
                current,
                start_to_close_timeout=timedelta(seconds=limits.task_attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=limits.heartbeat_timeout_s),
                # a crashed worker's attempt is retried (it resumes from what it pushed: see attempt.py)
                retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=NON_RETRYABLE),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as e:
            if outage_of(e) is not None:
                run.spend_failed(e)
                rec.usage = rec.usage + failed_usage(e)
                current = current.model_copy(update={"resumes": current.resumes + 1})
            raise
        return result

    async def waiting(w: Waiting) -> None:
        rec.stage = f"⏸️ waiting for {w.service} ({w.detail}), then carrying on"
        await run.waiting(w)

    patience = dataclasses.replace(run.patience, on_wait=waiting)
    try:
        result = await outlast(once, patience, f"task {rec.task.id}")
    except asyncio.CancelledError:
        rec.status = TaskStatus.ERROR
        rec.note = STOPPED_NOTE
        return
    except ActivityError as e:
        if outage_of(e) is None:  # an outage's spend was counted as it happened
            run.spend_failed(e)  # what a failed or stopped attempt spent counts
            rec.usage = rec.usage + failed_usage(e)
        rec.status = TaskStatus.ERROR
        rec.note = STOPPED_NOTE if failure_kind(e) == FailureKind.STOPPED else explain(e)
        if failure_kind(e) == FailureKind.SANDBOX_UNAVAILABLE:
            run.m.halt_reason = rec.note
        return
    apply(run, rec, result)


def apply(run: Run, rec: TaskRecord, result: TaskResult) -> None:
    if result.budget_exhausted:
        run.m.budget_spent = True
    rec.status = result.status
    rec.summary = result.summary
    rec.failures = result.failures
    rec.fix_rounds = result.fix_rounds
    rec.verify_log_tail = result.verify_log_tail
    rec.refused_changes = result.refused_changes
    if result.head_sha:  # Otto's own push, checked by this attempt
        rec.pushed_by, rec.verifying_sha = None, None
    rec.head_sha = result.head_sha or rec.head_sha
    rec.pr_number = result.pr_number or rec.pr_number
    rec.pr_url = result.pr_url or rec.pr_url
    rec.note = result.error
    rec.usage = rec.usage + result.usage
    run.spend(result.usage)
    if result.learning:
        run.state.learnings = [*run.state.learnings, result.learning][-LEARNINGS_KEPT:]
