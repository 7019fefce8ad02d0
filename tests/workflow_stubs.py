"""Stub activities for workflow tests: every activity spec (``app.contracts.activities``) implemented by a
small in-memory fake that records its calls, registered under the spec's name. The workflows run for real
(Temporal's time-skipping test server), so their decisions are tested fast and without GitHub or a model.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from app.contracts import activities as act
from app.contracts.io import (
    ClassifyResult,
    LoadedIssue,
    MergeOutcome,
    PilotResult,
    PlanResult,
    RepoFiles,
    TaskInput,
    TaskPull,
    TaskResult,
)
from app.contracts.messages import RunInput, RunLimits, Trigger
from app.domain.plan import PlannedTask
from app.domain.run import Classification, RepoRef, RunState, TaskStatus
from app.domain.usage import Usage
from app.outages import Outage
from app.workflows.delivery import DeliveryWorkflow
from app.workflows.gate import InstallationGate
from app.workflows.run import RunWorkflow

REPO = RepoRef(installation_id=7, owner="acme", name="widgets", repo_id=42)
QUEUE = "stub-queue"


def planned(tid: str, *deps: str) -> PlannedTask:
    return PlannedTask(
        id=tid, title=f"Task {tid}", intent=f"Do {tid}.", acceptance=["it works"], depends_on=list(deps)
    )


def passed(inp: TaskInput, pr: int, sha: str | None = None) -> TaskResult:
    return TaskResult(
        task_id=inp.task.id,
        status=TaskStatus.PASSED,
        summary=f"did {inp.task.id}",
        verify_passed=True,
        head_sha=sha or f"{inp.task.id}-{inp.attempt}".ljust(40, "0"),
        pr_number=pr,
        pr_url=f"https://github.example/acme/widgets/pull/{pr}",
        usage=Usage.of_call("claude-sonnet-4-6", 1000, 100),
    )


@dataclass
class Stubs:
    """The fakes' behaviour (set by a test) and what they were called with."""

    tasks: list[PlannedTask] = field(default_factory=lambda: [planned("t1")])
    execute: Callable[[TaskInput], TaskResult] | None = None
    merge: Callable[[Any], MergeOutcome] = lambda m: MergeOutcome(result="merged", merge_sha="m" * 40)
    calls: dict[str, list[Any]] = field(default_factory=dict)
    comment_id: int = 1001
    outages: dict[str, int] = field(default_factory=dict)  # activity name → how many calls meet an outage
    outage: tuple[str, str] = ("GitHub", "502")
    outage_spend: Usage = field(default_factory=Usage)  # what an interrupted call reports it spent
    client: Client | None = None  # the gate grants slots at once, as an idle installation's gate does

    def record(self, name: str, arg: Any) -> None:
        self.calls.setdefault(name, []).append(arg)

    def count(self, name: str) -> int:
        return len(self.calls.get(name, []))

    def implementations(self) -> list[Callable[..., Any]]:
        s = self

        def stub(spec: act.ActivitySpec[Any, Any], answer: Callable[[Any], Any]) -> Callable[..., Any]:
            async def run(arg: Any) -> Any:
                s.record(spec.name, arg)
                if s.outages.get(spec.name, 0) > 0:
                    s.outages[spec.name] -= 1
                    raise Outage(*s.outage).failure(s.outage_spend, retryable=False)
                if spec is act.GATE and arg.action == "acquire" and s.client is not None:
                    await s.client.get_workflow_handle(arg.run_id).signal("granted")
                return answer(arg)

            run.__name__ = spec.name
            run.__annotations__ = {"arg": spec.input, "return": spec.output}  # what the converter decodes
            return activity.defn(name=spec.name)(run)

        prs = iter(range(100, 10_000))

        def execute(inp: TaskInput) -> TaskResult:
            return s.execute(inp) if s.execute else passed(inp, next(prs))

        answers: dict[str, Callable[[Any], Any]] = {
            act.CHECK_PERMISSION.name: lambda q: "write",
            act.PUBLISH_STATUS.name: lambda p: p.state.status_comment_id or s.comment_id,
            act.POST_REFUSAL.name: lambda r: 1,
            act.REPLY.name: lambda r: 1,
            act.RESOLVE_TASK_PULL.name: lambda q: TaskPull(run_id="", task_id="t1", issue_number=1),
            act.MERGE_TASK_PULL.name: lambda m: s.merge(m),
            act.REVIEW_GUIDANCE.name: lambda q: "",
            act.CI_REPORT.name: lambda q: "",
            act.LOAD_ISSUE.name: lambda q: LoadedIssue(
                title="Widgets",
                body="Make widgets.",
                author="mona",
                html_url="https://github.example/acme/widgets/issues/1",
                state="open",
                default_branch="main",
                clone_url="https://github.example/acme/widgets.git",
                config_text=None,
            ),
            act.START_OR_SIGNAL_RUN.name: lambda r: "",
            act.SIGNAL_RUN.name: lambda r: {"delivered": True},
            act.CLASSIFY.name: lambda m: ClassifyResult(
                classification=Classification(actionable=True, summary="Widgets."),
                usage=Usage.of_call("claude-sonnet-4-6", 500, 50),
            ),
            act.PLAN.name: lambda m: PlanResult(plan_summary="The plan.", tasks=s.tasks),
            act.PILOT.name: lambda p: PilotResult.model_validate({"decision": {"tasks": []}}),
            act.REPLAN.name: lambda r: PlanResult(plan_summary="", tasks=[]),
            act.LIST_REPO_FILES.name: lambda q: RepoFiles(files=["README.md"], total=1),
            act.REBASE_BRANCH.name: lambda r: None,
            act.EXECUTE_TASK.name: execute,
        }
        return [stub(spec, answers.get(spec.name, lambda arg: None)) for spec in act.ALL]


def run_input(limits: RunLimits | None = None, sender: str = "mona") -> RunInput:
    return RunInput(
        repo=REPO,
        issue_number=1,
        trigger=Trigger(
            delivery_id=str(uuid.uuid4()), sender=sender, label="otto", issue_title="Widgets", issue_body=""
        ),
        limits=limits or RunLimits(model="claude-sonnet-4-6"),
    )


@contextlib.asynccontextmanager
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    server = Path(sys.executable).parent / "temporal-test-server"
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(server)
    ) as env:
        yield env


@contextlib.asynccontextmanager
async def stub_worker(client: Client, stubs: Stubs) -> AsyncIterator[str]:
    stubs.client = client
    queue = f"{QUEUE}-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[RunWorkflow, DeliveryWorkflow, InstallationGate],
        activities=stubs.implementations(),
    ):
        yield queue


async def status(client: Client, run_id: str) -> RunState:
    state: RunState = await client.get_workflow_handle(run_id).query("status", result_type=RunState)
    return state
