"""What may flow between the repositories of a change set (``app.domain.linking``'s rule applied to a
run's tasks): a task's learnings and the pilot's words reach another task only where its repository's content
may go."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.domain.linking import may_flow
    from app.domain.run import TaskRecord
    from app.domain.scheduling import same_repo
    from app.workflows.run.context import Run


def flows(run: Run, source: TaskRecord, target: TaskRecord) -> bool:
    """Whether what a task did (its summary, its log) may reach another task's repository (app.domain.linking:
    never a private repository's into a public one without that repository's consent)."""
    if same_repo(source, target):
        return True
    ctx = run.m.context
    assert ctx is not None
    to = run.where(target)
    if source.repo is None:  # the repository, consenting through its own `share_with:`
        consent = {n.lower() for n in run.m.config.share_with}
        return not ctx.private or to.private or to.repo.full_name.lower() in consent
    link = next((x for x in run.state.linked if x.repo_id == source.repo.repo_id), None)
    return link is not None and may_flow(link, to.private, to.repo.full_name)


def learned_may_reach(run: Run, line: str, rec: TaskRecord) -> bool:
    """A learning line (``- <task> (…): …``) for ``rec`` only when its task's repository may flow there."""
    if not run.state.linked:
        return True
    task_id = line.removeprefix("- ").split(" ", 1)[0]
    source = next((t for t in run.state.tasks if t.task.id == task_id), None)
    return source is not None and flows(run, source, rec)


def pilot_may_reach(run: Run, rec: TaskRecord) -> bool:
    """The pilot read every task: its note for ``rec`` only when all of them may flow into its repository."""
    return not run.state.linked or all(flows(run, t, rec) for t in run.state.tasks)
