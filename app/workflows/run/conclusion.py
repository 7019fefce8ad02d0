"""The end of a run: the summary comment, closing the issue when every task is merged."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.io import CloseIssueInput
    from app.domain.render import plural
    from app.domain.run import RunPhase, TaskStatus
    from app.workflows.run.context import Run


async def conclude(run: Run) -> None:
    state = run.state
    merged = [r for r in state.tasks if r.status == TaskStatus.MERGED]
    others = [r for r in state.tasks if r.status != TaskStatus.MERGED]
    lines = [f"🤖 Otto's run for this issue is done: {plural(len(merged), 'task')} merged."]
    lines += [f"- {r.task.id} {r.task.title}: #{r.pr_number} merged" for r in merged]
    lines += [f"- {r.task.id} {r.task.title}: {r.status.value} {r.note}".rstrip() for r in others]
    u = state.usage
    lines.append(f"\n{plural(u.calls, 'model call')}, {u.total_tokens} tokens, ${u.cost_usd:.4f}.")
    await run.say(run.inp.issue_number, f"summary run={state.run_id}", "\n".join(lines))
    if not others:
        await run.github(
            act.CLOSE_ISSUE, CloseIssueInput(repo=run.inp.repo, issue_number=run.inp.issue_number)
        )
    state.finish(
        RunPhase.DONE,
        "Every task is merged; the issue is closed."
        if not others
        else "No task is left open; the tasks that were not merged are listed above.",
    )
