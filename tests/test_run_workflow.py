"""The run workflow's decisions against stub activities under Temporal's time-skipping test server: fast,
and the same workflow code the end-to-end tests run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from app.contracts.io import MergeInput, MergeOutcome
from app.contracts.messages import (
    OUTAGE_MEMO,
    OutagePolicy,
    ReviewRequest,
    ReviewSignal,
    RunLimits,
    StopRequest,
)
from app.domain.run import RunPhase, RunState, TaskRecord, TaskStatus
from app.domain.usage import Usage
from tests.workflow_stubs import REPO, Stubs, planned, run_input, status, stub_worker, time_skipping


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping() as environment:
        yield environment


async def start(client: Client, queue: str, run_id: str, **limits: object) -> None:
    inp = run_input(RunLimits(model="claude-sonnet-4-6", **limits))
    await client.start_workflow("RunWorkflow", inp, id=run_id, task_queue=queue)


async def new_run(handle: WorkflowHandle[Any, Any], old: str | None) -> bool:
    """Whether the workflow continued as new (its latest run is not ``old``), once it caught up."""
    for _ in range(200):
        if (await handle.describe()).run_id != old:
            return True
        await asyncio.sleep(0.05)
    return False


def approval(rec: TaskRecord, reviewer: str = "mona") -> ReviewSignal:
    return ReviewSignal(
        task_id=rec.task.id,
        pr_number=rec.pr_number or 0,
        state="approved",
        commit_id=rec.head_sha,
        reviewer=reviewer,
        review_id=1,
    )


async def handled(client: Client, run_id: str, events: int) -> RunState:
    """The state once the run has handled ``events`` human inputs (reviews, PR changes, CI, retries)."""
    for _ in range(400):
        state = await status(client, run_id)
        if state.events_handled >= events:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"{run_id} handled {state.events_handled} of {events} events")


async def wait_phase(client: Client, run_id: str, phase: RunPhase) -> None:
    handle = client.get_workflow_handle(run_id)
    for _ in range(400):
        state = await status(client, run_id)
        if state.phase == phase:
            return
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            break
        await client.get_workflow_handle(run_id).signal("refresh", {})  # lets time-skipping move on
    raise AssertionError(f"{run_id} never reached {phase}: {(await status(client, run_id)).phase}")


async def test_a_run_waiting_for_review_continues_as_new_and_still_merges(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    async with stub_worker(env.client, stubs) as queue:
        run_id = "otto/42/can"
        await start(env.client, queue, run_id, run_history_max_events=100)
        await wait_phase(env.client, run_id, RunPhase.WAITING_REVIEW)
        before = await status(env.client, run_id)
        first_run = (await env.client.get_workflow_handle(run_id).describe()).run_id
        for _ in range(60):  # each refresh is history: the run passes its bound and continues as new
            await env.client.get_workflow_handle(run_id).signal("refresh", {})
        handle = env.client.get_workflow_handle(run_id)
        assert await new_run(handle, first_run)  # a new run of the same workflow id, same state
        after = await status(env.client, run_id)
        assert after.status_comment_id == before.status_comment_id  # the same status comment
        assert after.budget_usd == before.budget_usd
        assert after.usage == before.usage  # the spend so far is carried, not reset
        rec = after.record("t1")
        await handle.signal("review", approval(rec))
        final = RunState.model_validate(await handle.result())
        assert final.phase == RunPhase.DONE
        assert final.record("t1").status == TaskStatus.MERGED
        merges: list[MergeInput] = stubs.calls["merge_task_pull"]
        assert [m.approved_sha for m in merges] == [rec.head_sha]


async def test_an_approval_of_a_dependent_waits_for_its_dependency(env: WorkflowEnvironment) -> None:
    stubs = Stubs(tasks=[planned("t1"), planned("t2", "t1")])
    async with stub_worker(env.client, stubs) as queue:
        run_id = "otto/42/order"
        await start(env.client, queue, run_id)
        await wait_phase(env.client, run_id, RunPhase.WAITING_REVIEW)
        state = await status(env.client, run_id)
        handle = env.client.get_workflow_handle(run_id)
        t1, t2 = state.record("t1"), state.record("t2")
        assert t2.pr_base == t1.branch  # stacked on its dependency
        await handle.signal("review", approval(t2))
        waiting = await handled(env.client, run_id, 1)
        assert stubs.count("merge_task_pull") == 0  # waits for t1
        assert waiting.record("t2").waiting_on == ["t1"]
        await handle.signal("review", approval(t1))
        final = RunState.model_validate(await handle.result())
        merged = [m.pr_number for m in stubs.calls["merge_task_pull"]]
        assert merged == [t1.pr_number, t2.pr_number]  # in dependency order
        assert final.phase == RunPhase.DONE


async def test_a_head_that_moved_after_the_approval_merges_nothing(env: WorkflowEnvironment) -> None:
    stubs = Stubs(merge=lambda m: MergeOutcome(result="head_moved", head_sha="f" * 40))
    async with stub_worker(env.client, stubs) as queue:
        run_id = "otto/42/moved"
        await start(env.client, queue, run_id)
        await wait_phase(env.client, run_id, RunPhase.WAITING_REVIEW)
        rec = (await status(env.client, run_id)).record("t1")
        handle = env.client.get_workflow_handle(run_id)
        await handle.signal("review", approval(rec))
        after = await handled(env.client, run_id, 1)
        assert after.record("t1").status == TaskStatus.PASSED
        assert after.record("t1").approved_sha is None
        assert any("moved after it was approved" in r.body for r in stubs.calls["reply"])
        await handle.execute_update("stop", StopRequest(sender="mona"), result_type=str)
        final = RunState.model_validate(await handle.result())
        assert final.phase == RunPhase.CANCELLED
        assert "Stopped by @mona" in final.reason


async def test_an_attempt_an_outage_interrupts_is_taken_up_again_and_its_spend_counted(
    env: WorkflowEnvironment,
) -> None:
    spent = Usage.of_call("claude-sonnet-4-6", 2000, 200)
    stubs = Stubs(
        outages={"execute_task": 2}, outage=("the model API", "529 overloaded_error"), outage_spend=spent
    )
    async with stub_worker(env.client, stubs) as queue:
        run_id = "otto/42/outage-task"
        await start(env.client, queue, run_id, outage_first_wait_s=30.0, outage_max_wait_s=60.0)
        for _ in range(100):  # the durable waits pass as the test server's clock is moved on
            state = await status(env.client, run_id)
            if state.phase == RunPhase.WAITING_REVIEW:
                break
            await env.sleep(20)
        rec = state.record("t1")
        assert rec.status == TaskStatus.PASSED
        assert rec.attempts == 1  # the same attempt, taken up again: not a retry
        assert [c.resumes for c in stubs.calls["execute_task"]] == [0, 1, 2]
        assert rec.usage.calls == 2 + 1  # both interrupted tries' calls and the finished one's
        assert state.waiting is None
        waits = [p.state.waiting for p in stubs.calls["publish_status"] if p.state.waiting is not None]
        assert waits  # the status said what it waited for
        assert waits[0].service == "the model API"
        handle = env.client.get_workflow_handle(run_id)
        await handle.execute_update("stop", StopRequest(sender="mona"), result_type=str)
        assert RunState.model_validate(await handle.result()).phase == RunPhase.CANCELLED


async def test_an_outage_past_the_runs_deadline_ends_it_in_words(env: WorkflowEnvironment) -> None:
    stubs = Stubs(outages={"load_issue": 1_000})
    async with stub_worker(env.client, stubs) as queue:
        run_id = "otto/42/outage-deadline"
        limits = RunLimits(model="claude-sonnet-4-6", outage_deadline_s=3600.0, outage_max_wait_s=600.0)
        inp = run_input(limits)
        handle = await env.client.start_workflow("RunWorkflow", inp, id=run_id, task_queue=queue)
        final = RunState.model_validate(await handle.result())
        assert final.phase == RunPhase.FAILED
        assert final.reason.startswith(
            "GitHub is not available (502), and it did not come back before the run's"
        )
        tries = stubs.count("load_issue")
        assert 6 <= tries <= 12  # 10 s doubling to 600 s within the hour, not a busy loop


async def test_an_accepted_delivery_that_an_outage_outlasts_says_so(env: WorkflowEnvironment) -> None:
    stubs = Stubs(outages={"resolve_task_pull": 1_000})
    review = ReviewRequest(
        repo=REPO,
        pr_number=7,
        state="approved",
        commit_id="a" * 40,
        reviewer="mona",
        review_id=3,
        delivery_id="d-1",
    )
    policy = OutagePolicy(deadline_s=3600.0, first_wait_s=10.0, max_wait_s=600.0)
    async with stub_worker(env.client, stubs) as queue:
        result = await env.client.execute_workflow(
            "DeliveryWorkflow",
            review,
            id="delivery/outage",
            task_queue=queue,
            memo={OUTAGE_MEMO: policy.model_dump()},
            result_type=str,
        )
        assert result == "not done: GitHub did not answer (502) before the deadline"
        (reply,) = stubs.calls["reply"]
        assert reply.number == 7
        assert reply.body.startswith("Otto could not act on this review: GitHub did not answer (502) for 1 h")
