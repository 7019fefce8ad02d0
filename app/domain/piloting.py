"""Applying the gate pilot's (validated) decision to the run's state: what is skipped, routed, reordered
here; what must be retried or replanned is returned for the workflow to carry out."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.pilot import PilotDecision, dependents_of
from app.domain.run import RunState, TaskStatus

DECISIONS_KEPT = 5


@dataclass
class PilotPlan:
    retries: list[tuple[str, str]] = field(default_factory=list)  # (task id, strategy)
    replan: list[str] = field(default_factory=list)


def apply_decision(state: RunState, decision: PilotDecision) -> PilotPlan:
    state.decisions = [*state.decisions, decision][-DECISIONS_KEPT:]
    summary = decision.summary or ", ".join(f"{d.task_id}: {d.action}" for d in decision.tasks)
    state.notice(f"🧭 Gate pilot: {summary}")
    for tid, text in decision.route_context.items():
        state.route_context[tid] = text
    if decision.reorder:
        state.preferred_order = list(decision.reorder)
    depends = {r.task.id: list(r.task.depends_on) for r in state.tasks}
    plan = PilotPlan()
    for d in decision.tasks:
        if d.action == "retry":
            state.retries_used[d.task_id] = state.retries_used.get(d.task_id, 0) + 1
            plan.retries.append((d.task_id, d.strategy))
        elif d.action == "skip":
            rec = state.record(d.task_id)
            rec.status = TaskStatus.SKIPPED
            rec.note = "skipped by the gate pilot"
            for dep in dependents_of(d.task_id, depends):
                dependent = state.record(dep)
                if dependent.status != TaskStatus.PENDING:
                    continue
                if dep in decision.route_context:  # routed around the skipped task
                    dependent.task = dependent.task.model_copy(
                        update={"depends_on": [x for x in dependent.task.depends_on if x != d.task_id]}
                    )
                else:
                    dependent.status = TaskStatus.SKIPPED
                    dependent.note = f"skipped: depends on {d.task_id}, which the gate pilot skipped"
        else:
            plan.replan.append(d.task_id)
    return plan
