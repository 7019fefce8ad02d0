"""The intake's one Temporal-side effect: start the issue's run, or signal the run already active."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from app.contracts.ids import gate_workflow_id, run_workflow_id
from app.contracts.io import Delivered, GateInput, SignalInput
from app.contracts.messages import (
    GATE_WORKFLOW,
    RUN_SIGNALS,
    RUN_UPDATES,
    RUN_WORKFLOW,
    GateState,
    RunInput,
    RunLimits,
    RunMessage,
    StartRun,
)
from app.domain.links import RUN_ID
from app.domain.run import RunState
from app.settings import Settings


class IntakeActivities:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def limits(self) -> RunLimits:
        return RunLimits.of(self.settings)

    async def latest_labeling(self, repo_id: int, issue_number: int) -> tuple[int, bool]:
        """The issue's latest run (its labeling number, 0 when it never had one) and whether it is active.
        Temporal's records of ``otto/<repo>/<issue>``, ``….2``, … are the source (kept for the namespace's
        retention)."""
        n, active = 0, False
        while True:
            handle = self.client.get_workflow_handle(run_workflow_id(repo_id, issue_number, n + 1))
            try:
                desc = await handle.describe()
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND:
                    return n, active
                raise
            n, active = n + 1, desc.status == WorkflowExecutionStatus.RUNNING
            if active and await self._ending(handle):
                active = False  # its end is written, its last publish on the way: a labeling now is new

    @staticmethod
    async def _ending(handle: WorkflowHandle[Any, Any]) -> bool:
        """A run still open in Temporal whose state has already ended (between its final phase and the
        workflow's close). When the run can't say, it counts as active (a labeling then is a notice)."""
        try:
            state = await handle.query(RunMessage.STATUS, result_type=RunState)
        except Exception:
            return False
        return isinstance(state, RunState) and state.phase.final

    @activity.defn
    async def start_or_signal_run(self, request: StartRun) -> str:
        """The issue's active run receives this labeling as a notice; with none active, the labeling starts
        a new run of its own (``otto/<repo>/<issue>``, then ``….2``, …): an earlier run's history, status
        comment, branches and Mission Control page stay as they were."""
        run = RunInput(
            repo=request.repo,
            issue_number=request.issue_number,
            trigger=request.trigger,
            limits=self.limits(),
        )
        for _ in range(3):  # a run that ends, or another labeling that starts one, between look and start
            latest, active = await self.latest_labeling(request.repo.repo_id, request.issue_number)
            labeling = latest if active else latest + 1
            try:
                handle: WorkflowHandle[Any, Any] = await self.client.start_workflow(
                    RUN_WORKFLOW,
                    run,
                    id=run_workflow_id(request.repo.repo_id, request.issue_number, labeling),
                    task_queue=self.settings.task_queue,
                    start_signal=RunMessage.TRIGGER,
                    start_signal_args=[request.trigger],
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,  # never a second run under one id
                )
            except WorkflowAlreadyStartedError:
                continue
            return handle.id
        raise RuntimeError(f"the runs of issue #{request.issue_number} kept changing while starting one")

    @activity.defn
    async def signal_run(self, inp: SignalInput) -> Delivered:
        """A signal or an update to an open run. Not delivered when there is none (never started, finished or
        cancelled); an update the run's validator rejects comes back with the run's answer. An accepted update
        is not waited for: the run answers on GitHub itself when its work is done."""
        run_id = inp.run_id
        if inp.latest:
            m = RUN_ID.fullmatch(run_id)
            if m is None:
                raise ValueError(f"not a run id: {run_id!r}")
            latest, _ = await self.latest_labeling(int(m["repo"]), int(m["issue"]))
            run_id = run_workflow_id(int(m["repo"]), int(m["issue"]), max(latest, 1))
        handle = self.client.get_workflow_handle(run_id)
        try:
            desc = await handle.describe()
        except RPCError:
            return Delivered(delivered=False)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return Delivered(delivered=False)
        if inp.signal in RUN_UPDATES:  # answered at once: accepted, or rejected by the run's validator
            try:
                await handle.execute_update(inp.signal, inp.payload, result_type=str)
            except WorkflowUpdateFailedError as e:
                cause = e.cause
                return Delivered(delivered=True, rejected=getattr(cause, "message", None) or str(cause or e))
            return Delivered(delivered=True)
        if inp.signal not in RUN_SIGNALS:
            raise ValueError(f"unknown run signal {inp.signal!r}")
        await handle.signal(inp.signal, inp.payload)
        return Delivered(delivered=True)

    @activity.defn
    async def gate(self, inp: GateInput) -> None:
        """Ask the installation's gate for a slot (signal-with-start), or give one back."""
        await self.client.start_workflow(
            GATE_WORKFLOW,
            GateState(
                installation_id=inp.installation_id, max_active=self.settings.max_active_runs_per_installation
            ),
            id=gate_workflow_id(inp.installation_id),
            task_queue=self.settings.task_queue,
            start_signal=inp.action,
            start_signal_args=[inp.run_id],
        )
