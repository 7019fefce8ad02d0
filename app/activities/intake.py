"""The intake's one Temporal-side effect: start the issue's run, or signal the run already active."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from app.domain.run import RunInput, RunLimits, StartRun, run_workflow_id
from app.settings import Settings


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
            id=run_workflow_id(request.repo, request.issue_number),
            task_queue=self.settings.task_queue,
            start_signal="trigger",
            start_signal_args=[request.trigger],
        )
        return handle.id
