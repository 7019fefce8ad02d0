"""What an approval leads to (probot-auto-merge style: a pure plan, carried out by the workflow)."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.run import RunState, TaskRecord, TaskStatus
from app.domain.scheduling import RESOLVED


@dataclass(frozen=True)
class Merge:
    sha: str


@dataclass(frozen=True)
class WaitFor:
    dependencies: list[str]


@dataclass(frozen=True)
class Nothing:
    why: str


MergePlan = Merge | WaitFor | Nothing


def merge_plan(state: RunState, rec: TaskRecord) -> MergePlan:
    """Merge the approved head now, wait for unmerged dependencies, or do nothing (and why)."""
    if rec.status in RESOLVED:
        return Nothing(f"the task is already {rec.status.value}")
    if rec.status == TaskStatus.RUNNING:
        return Nothing("the task is running")
    if rec.pr_number is None:
        return Nothing("the task has no pull request")
    if rec.approved_sha is None or rec.approved_sha != rec.head_sha:
        return Nothing("the approval is not for the current head")
    unmerged = [d for d in rec.task.depends_on if state.record(d).status != TaskStatus.MERGED]
    if unmerged:
        return WaitFor(unmerged)
    return Merge(rec.approved_sha)


def waiting_dependents(state: RunState, merged: TaskRecord) -> list[TaskRecord]:
    """Dependents of ``merged`` that were approved for their current head and waited for it."""
    return [
        dep
        for dep in state.tasks
        if merged.task.id in dep.task.depends_on
        and dep.status not in RESOLVED
        and dep.approved_sha
        and dep.approved_sha == dep.head_sha
        and dep.waiting_on
    ]
