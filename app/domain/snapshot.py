"""A run as Mission Control sees it: the workflow's state plus what only an observer over time knows (when it
started, when each phase and task state began, the human commands in order). Pure: the status-publishing
activity calls ``advance`` with the previous snapshot and the state it is publishing."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.domain.run import RunPhase, RunState, TaskStatus

TIMELINE_KEPT = 1000


class TimelineEvent(BaseModel):
    at: datetime
    kind: Literal["phase", "task", "notice", "stop"]
    text: str
    task_id: str | None = None
    status: str | None = None  # task events: the state the task entered


class RunSnapshot(BaseModel):
    schema_version: int = 1
    run_id: str
    execution: str = ""  # the Temporal execution: a new run of the same issue starts a new timeline
    seq: int = 0  # one more on every publish: the version the pages poll for
    created_at: datetime
    updated_at: datetime
    issue_title: str = ""
    state: RunState
    timeline: list[TimelineEvent] = Field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state.phase.final

    @property
    def repo_full_name(self) -> str:
        return self.state.repo.full_name


def _task_events(prev: RunState | None, state: RunState, now: datetime) -> list[TimelineEvent]:
    before = {r.task.id: r for r in prev.tasks} if prev else {}
    events = []
    for r in state.tasks:
        old = before.get(r.task.id)
        started_again = old is not None and r.attempts > old.attempts and r.status == TaskStatus.RUNNING
        if old is None and r.status == TaskStatus.PENDING:
            continue
        if old is not None and old.status == r.status and not started_again:
            continue
        if r.status == TaskStatus.RUNNING:
            text = f"{r.task.id} attempt {r.attempts} started"
        else:
            text = f"{r.task.id} {r.status.value}" + (f": {r.note}" if r.note else "")
        events.append(TimelineEvent(at=now, kind="task", text=text, task_id=r.task.id, status=r.status.value))
    return events


def advance(
    prev: RunSnapshot | None, state: RunState, *, now: datetime, execution: str = "", issue_title: str = ""
) -> RunSnapshot:
    """The snapshot after publishing ``state`` at ``now``."""
    if prev is not None and execution and prev.execution and prev.execution != execution:
        prev = None  # the issue was labeled again: a new run, a new timeline
    old = prev.state if prev else None
    events: list[TimelineEvent] = []
    if old is None or old.phase != state.phase:
        text = phase_label(state.phase) + (f": {state.reason}" if state.reason and state.phase.final else "")
        events.append(TimelineEvent(at=now, kind="phase", text=text, status=state.phase.value))
    events += _task_events(old, state, now)
    seen = len(old.notices) if old else 0
    events += [TimelineEvent(at=now, kind="notice", text=n) for n in state.notices[seen:]]
    if state.stop_requested_by and not (old and old.stop_requested_by):
        events.append(TimelineEvent(at=now, kind="stop", text=f"@{state.stop_requested_by} asked to stop"))
    return RunSnapshot(
        run_id=state.run_id,
        execution=execution or (prev.execution if prev else ""),
        seq=(prev.seq if prev else 0) + 1,
        created_at=prev.created_at if prev else now,
        updated_at=now,
        issue_title=issue_title or (prev.issue_title if prev else ""),
        state=state,
        timeline=[*(prev.timeline if prev else []), *events][-TIMELINE_KEPT:],
    )


def task_durations(snapshot: RunSnapshot, now: datetime) -> dict[str, float]:
    """Seconds each task spent running, summed over its attempts (a running task counts until ``now``)."""
    started: dict[str, datetime] = {}
    total: dict[str, float] = {}
    for e in snapshot.timeline:
        if e.kind != "task" or e.task_id is None:
            continue
        if e.status == TaskStatus.RUNNING.value:
            started.setdefault(e.task_id, e.at)
        elif e.task_id in started:
            total[e.task_id] = total.get(e.task_id, 0.0) + (e.at - started.pop(e.task_id)).total_seconds()
    end = now if not snapshot.final else snapshot.updated_at
    for task_id, at in started.items():
        total[task_id] = total.get(task_id, 0.0) + max(0.0, (end - at).total_seconds())
    return total


def phase_label(phase: RunPhase) -> str:
    return phase.value.replace("_", " ")
