"""Which task runs next, which can never run, where a task's PR points (pure functions of the run's state)."""

from __future__ import annotations

from app.domain.links import labeling_of
from app.domain.plan import Plan, PlannedTask, batches, branch_name
from app.domain.run import RepoRef, RunState, TaskRecord, TaskStatus

DONE_WITH_BRANCH = (TaskStatus.PASSED, TaskStatus.FAILED, TaskStatus.MERGED)
RESOLVED = (TaskStatus.MERGED, TaskStatus.ABANDONED, TaskStatus.SKIPPED)
NEEDS_DECISION = (TaskStatus.FAILED, TaskStatus.ERROR)


def add_tasks(state: RunState, tasks: list[PlannedTask], first_batch: int) -> None:
    """Append records for ``tasks``, their batches numbered from ``first_batch`` by dependency level among
    themselves (dependencies on earlier tasks are met by then)."""
    new_ids = {t.id for t in tasks}
    among_new = [
        t.model_copy(update={"depends_on": [d for d in t.depends_on if d in new_ids]}) for t in tasks
    ]
    levels = batches(Plan(tasks=among_new)) if tasks else []
    level_of = {tid: i for i, level in enumerate(levels) for tid in level}
    for t in tasks:
        branch = branch_name(state.issue_number, t, labeling_of(state.run_id))
        repo = repo_ref_of(state, t.repo)
        state.tasks.append(TaskRecord(task=t, batch=first_batch + level_of[t.id], branch=branch, repo=repo))


def same_repo(a: TaskRecord, b: TaskRecord) -> bool:
    return (a.repo.repo_id if a.repo else 0) == (b.repo.repo_id if b.repo else 0)


def repo_ref_of(state: RunState, name: str | None) -> RepoRef | None:
    """The linked repository a task names (None: the issue's own)."""
    if not name or name.lower() == state.repo.full_name.lower():
        return None
    link = next((x for x in state.linked if x.repo.lower() == name.lower()), None)
    if link is None:
        return None
    owner, _, repo = link.repo.partition("/")
    return RepoRef(installation_id=state.repo.installation_id, owner=owner, name=repo, repo_id=link.repo_id)


def pending(state: RunState) -> list[TaskRecord]:
    return [r for r in state.tasks if r.status == TaskStatus.PENDING]


def ready(state: RunState) -> list[TaskRecord]:
    """Pending tasks whose dependencies all produced a branch, in the pilot's preferred order."""
    done = {r.task.id for r in state.tasks if r.status in DONE_WITH_BRANCH}
    candidates = [r for r in pending(state) if all(d in done for d in r.task.depends_on)]
    order = state.preferred_order
    return sorted(candidates, key=lambda r: order.index(r.task.id) if r.task.id in order else len(order))


def skip_blocked(state: RunState) -> None:
    """Pending tasks whose dependency will never produce a branch are skipped, with the reason."""
    changed = True
    while changed:
        changed = False
        status = {r.task.id: r.status for r in state.tasks}
        for r in pending(state):
            dead = [d for d in r.task.depends_on if status.get(d) in (TaskStatus.ERROR, TaskStatus.SKIPPED)]
            if dead:
                r.status = TaskStatus.SKIPPED
                r.note = f"skipped: depends on {', '.join(dead)}, which produced no usable branch"
                changed = True


def pr_base(state: RunState, rec: TaskRecord, base_branch: str) -> str:
    """Stacked on its dependency's branch while it has exactly one unmerged dependency, else the base."""
    same = [d for d in rec.task.depends_on if same_repo(state.record(d), rec)]
    unmerged = [d for d in same if state.record(d).status != TaskStatus.MERGED]
    if len(unmerged) == 1:
        return state.record(unmerged[0]).branch
    return base_branch


def all_resolved(state: RunState) -> bool:
    """Something was merged and no task is left open (tasks that errored without a PR count as closed)."""
    merged = any(r.status == TaskStatus.MERGED for r in state.tasks)
    open_ = [
        r
        for r in state.tasks
        if r.status not in RESOLVED and not (r.status == TaskStatus.ERROR and not r.pr_number)
    ]
    return merged and not open_
