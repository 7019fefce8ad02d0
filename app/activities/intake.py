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
from temporalio.service import RPCError

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
from app.settings import Settings


class IntakeActivities:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def limits(self) -> RunLimits:
        return RunLimits.of(self.settings)

    @activity.defn
    async def start_or_signal_run(self, request: StartRun) -> str:
        """Signal-with-start: a new run starts with this trigger; an active run receives it as a notice."""
        run = RunInput(
            repo=request.repo,
            issue_number=request.issue_number,
            trigger=request.trigger,
            limits=self.limits(),
        )
        handle: WorkflowHandle[Any, Any] = await self.client.start_workflow(
            RUN_WORKFLOW,
            run,
            id=run_workflow_id(request.repo.repo_id, request.issue_number),
            task_queue=self.settings.task_queue,
            start_signal=RunMessage.TRIGGER,
            start_signal_args=[request.trigger],
        )
        return handle.id

    @activity.defn
    async def signal_run(self, inp: SignalInput) -> Delivered:
        """A signal or an update to an open run. Not delivered when there is none (never started, finished or
        cancelled); an update the run's validator rejects comes back with the run's answer. An accepted update
        is not waited for: the run answers on GitHub itself when its work is done."""
        handle = self.client.get_workflow_handle(inp.run_id)
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
