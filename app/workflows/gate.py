"""InstallationGate: at most N runs of one installation work at a time; the others wait in order.

One long-lived workflow per installation (id ``gate/<installation id>``), signalled by the runs through an
activity (signal-with-start). A run holds its slot from planning until it waits for review or ends.
"""

from __future__ import annotations

from temporalio import workflow

from app.contracts.messages import GateState, RunMessage

EVENTS_BEFORE_CONTINUE_AS_NEW = 400


@workflow.defn
class InstallationGate:
    @workflow.init
    def __init__(self, state: GateState) -> None:
        self.state = state
        self.events = 0
        self.dirty = True

    @workflow.signal
    def acquire(self, run_id: str) -> None:
        self.events += 1
        if run_id not in self.state.active and run_id not in self.state.waiting:
            self.state.waiting.append(run_id)
        self.dirty = True

    @workflow.signal
    def release(self, run_id: str) -> None:
        self.events += 1
        if run_id in self.state.active:
            self.state.active.remove(run_id)
        if run_id in self.state.waiting:
            self.state.waiting.remove(run_id)
        self.dirty = True

    @workflow.query
    def status(self) -> GateState:
        return self.state

    @workflow.run
    async def run(self, state: GateState) -> None:
        while True:
            await workflow.wait_condition(lambda: self.dirty)
            self.dirty = False
            while self.state.waiting and len(self.state.active) < self.state.max_active:
                run_id = self.state.waiting.pop(0)
                self.state.active.append(run_id)
                await workflow.get_external_workflow_handle(run_id).signal(RunMessage.GRANTED)
            for position, run_id in enumerate(self.state.waiting, start=1):
                await workflow.get_external_workflow_handle(run_id).signal(RunMessage.QUEUED, position)
            if self.events >= EVENTS_BEFORE_CONTINUE_AS_NEW and not self.dirty:
                workflow.continue_as_new(self.state)
