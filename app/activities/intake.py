"""The intake's one Temporal-side effect: start the issue's run, or signal the run already active."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from app.contracts.ids import run_workflow_id
from app.contracts.io import GateInput, SignalInput
from app.contracts.messages import RunInput, RunLimits, StartRun
from app.settings import Settings

RUN_SIGNALS = frozenset(
    {"retry", "stop", "refresh", "review", "pull_changed", "ci_failed"}
)  # RunWorkflow's signal handlers


class IntakeActivities:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def limits(self) -> RunLimits:
        s = self.settings
        return RunLimits(
            model=s.model,
            label=s.trigger_label,
            max_tasks=s.max_tasks,
            max_parallel_tasks=s.max_parallel_tasks,
            task_attempt_timeout_s=s.task_attempt_timeout_s,
            heartbeat_timeout_s=s.heartbeat_timeout_s,
            max_pilot_retries=s.max_pilot_retries,
            delete_merged_branches=s.delete_merged_branches,
            budget_usd_default=s.budget_usd_default,
            budget_usd_max=s.budget_usd_max,
            model_task_queue=s.model_task_queue,
            cpu_task_queue=s.cpu_task_queue,
            temporal_ui_url=s.temporal_ui_url,
        )

    @activity.defn
    async def start_or_signal_run(self, request: StartRun) -> str:
        """Signal-with-start: a new run starts with this trigger; an active run receives it as a notice."""
        from app.workflows.run import RunWorkflow

        run = RunInput(
            repo=request.repo,
            issue_number=request.issue_number,
            trigger=request.trigger,
            limits=self.limits(),
        )
        handle = await self.client.start_workflow(
            RunWorkflow.run,
            run,
            id=run_workflow_id(request.repo.repo_id, request.issue_number),
            task_queue=self.settings.task_queue,
            start_signal="trigger",
            start_signal_args=[request.trigger],
        )
        return handle.id

    @activity.defn
    async def signal_run(self, inp: SignalInput) -> bool:
        """Signal an open run; False when there is none (never started, finished or cancelled)."""
        handle = self.client.get_workflow_handle(inp.run_id)
        try:
            desc = await handle.describe()
        except RPCError:
            return False
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return False
        if inp.signal not in RUN_SIGNALS:
            raise ValueError(f"unknown run signal {inp.signal!r}")
        await handle.signal(inp.signal, inp.payload)
        return True

    @activity.defn
    async def gate(self, inp: GateInput) -> None:
        """Ask the installation's gate for a slot (signal-with-start), or give one back."""
        from app.contracts.ids import gate_workflow_id
        from app.workflows.gate import GateState, InstallationGate

        await self.client.start_workflow(
            InstallationGate.run,
            GateState(
                installation_id=inp.installation_id, max_active=self.settings.max_active_runs_per_installation
            ),
            id=gate_workflow_id(inp.installation_id),
            task_queue=self.settings.task_queue,
            start_signal=inp.action,
            start_signal_args=[inp.run_id],
        )
