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
class Verifying:
    """A person pushed this head; Otto's checks on it are running: the approval waits for them."""

    sha: str


@dataclass(frozen=True)
class Nothing:
    why: str


@dataclass(frozen=True)
class Refuse:
    """Not merged, and the approver is told why and what to do (``reason`` names the rule)."""

    reason: str  # "red", "running", "skipped", "abandoned"


MergePlan = Merge | WaitFor | Verifying | Nothing | Refuse


def merge_plan(state: RunState, rec: TaskRecord, *, override: bool = False) -> MergePlan:
    """Merge the approved head now, wait for unmerged dependencies or for Otto's checks on a head a person
    pushed, refuse (red checks, a task that is running, skipped or closed), or do nothing. ``override``: a
    writer's `/otto merge` merges red (or unchecked) heads."""
    if rec.status == TaskStatus.MERGED:
        return Nothing("the task is already merged")
    if rec.pr_number is None:
        return Nothing("the task has no pull request")
    if rec.status == TaskStatus.RUNNING:
        return Refuse("running")
    if rec.status == TaskStatus.ABANDONED:
        return Refuse("abandoned")
    if rec.status == TaskStatus.SKIPPED and not override:
        return Refuse("skipped")
    if rec.status in (TaskStatus.FAILED, TaskStatus.ERROR) and not override:
        return Refuse("red")
    if rec.approved_sha is None or rec.approved_sha != rec.head_sha:
        return Nothing("the approval is not for the current head")
    if rec.verifying_sha is not None and rec.verifying_sha == rec.head_sha and not override:
        return Verifying(rec.verifying_sha)
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
