"""The gate pilot's decision contract, validated as a whole before anything is applied.

``{"tasks": [{"task_id", "analysis", "action": "retry"|"skip"|"replan", "strategy"}],
   "route_context": {"<task_id>": "what that pending task should know"}, "reorder": ["<task_id>", ...],
   "summary"}``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field


class TaskDecision(BaseModel):
    task_id: str
    analysis: str = Field(default="", max_length=4000)
    action: Literal["retry", "skip", "replan"]
    strategy: str = Field(default="", max_length=4000)


class PilotDecision(BaseModel):
    tasks: list[TaskDecision] = Field(default_factory=list)
    route_context: dict[str, str] = Field(default_factory=dict)
    reorder: list[str] = Field(default_factory=list)
    summary: str = Field(default="", max_length=2000)

    def decision(self, task_id: str) -> TaskDecision | None:
        return next((d for d in self.tasks if d.task_id == task_id), None)


class InvalidDecision(ValueError):
    pass


def validate_decision(
    decision: PilotDecision,
    *,
    failed: Sequence[str],
    pending: Sequence[str],
    depends_on: Mapping[str, Sequence[str]],
    retries_used: Mapping[str, int],
    max_retries: int,
) -> PilotDecision:
    """Check the whole decision against the run; raise InvalidDecision naming every problem."""
    problems: list[str] = []
    failed_set, pending_set = set(failed), set(pending)
    seen: set[str] = set()
    for d in decision.tasks:
        if d.task_id not in failed_set:
            problems.append(
                f"task {d.task_id!r} is not one of the failed tasks ({', '.join(failed) or 'none'})"
            )
        if d.task_id in seen:
            problems.append(f"task {d.task_id!r} has more than one decision")
        seen.add(d.task_id)
        if d.action == "retry" and retries_used.get(d.task_id, 0) >= max_retries:
            problems.append(
                f"task {d.task_id!r} was already retried {retries_used.get(d.task_id, 0)} time(s); "
                f"at most {max_retries} pilot retries are allowed"
            )
    missing = [t for t in failed if t not in seen]
    if missing:
        problems.append(f"no decision for failed task(s): {', '.join(missing)}")
    for tid in decision.route_context:
        if tid not in pending_set and tid not in failed_set:
            problems.append(f"route_context names {tid!r}, which is not a pending task")
    if decision.reorder:
        unknown = [t for t in decision.reorder if t not in pending_set]
        if unknown:
            problems.append(f"reorder names task(s) that are not pending: {', '.join(unknown)}")
        if len(set(decision.reorder)) != len(decision.reorder):
            problems.append("reorder repeats a task")
        position = {t: i for i, t in enumerate(decision.reorder)}
        for tid in decision.reorder:
            for dep in depends_on.get(tid, ()):
                if dep in position and position[dep] > position[tid]:
                    problems.append(f"reorder puts {tid!r} before its dependency {dep!r}")
    if problems:
        raise InvalidDecision("; ".join(problems))
    return decision


def dependents_of(task_id: str, depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """Every task that depends on ``task_id``, directly or through others, in a stable order."""
    out: list[str] = []
    frontier = [task_id]
    while frontier:
        current = frontier.pop(0)
        for tid, deps in depends_on.items():
            if current in deps and tid not in out and tid != task_id:
                out.append(tid)
                frontier.append(tid)
    return out
