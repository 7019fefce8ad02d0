"""After the draft PRs: retries asked by people (or by reviews and CI), approvals that merge, PRs that
change or close. Merges follow ``app.domain.merging``'s plan: SHA-guarded, in dependency order."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.io import CiQuery, CommentReaction, TaskPullQuery, VerifyHeadInput
    from app.contracts.messages import (
        BaseSignal,
        CiSignal,
        EditSignal,
        PullSignal,
        RetryRequest,
        ReviewSignal,
    )
    from app.domain.render import plural
    from app.domain.run import RunPhase, TaskRecord, TaskStatus
    from app.domain.scheduling import RESOLVED
    from app.domain.usage import worst_case_cost
    from app.workflows.run import execution
    from app.workflows.run.context import Run
    from app.workflows.run.merges import APPROVALS_TOLD, merged, try_merge

VERIFY_PUSHED_HEADS = "verify-pushed-heads"  # patched(): a person's push gets Otto's checks (was: a note)
PUSH_EVENT_WAIT = timedelta(seconds=60)  # how long an approval of an unknown head waits for its push event
WHY = {"command": "asked to retry", "review": "requested changes on", "ci": "CI failed on"}


def retry_refusal(run: Run, request: RetryRequest) -> str | None:
    """Why a retry can't start now (the update's validator answers with it), or None."""
    try:
        rec = run.state.record(request.task_id)
    except KeyError:
        return f"This run has no task `{request.task_id}`."
    if run.stopped():
        return "This run was stopped; label the issue again to start a new one."
    if request.pr_number and not run.owns(rec, request.repo_id):
        return "This pull request is not that task's; nothing was started."
    if rec.status == TaskStatus.RUNNING or request.task_id in run.running or run.m.context is None:
        return f"Task `{rec.task.id}` is already running; nothing new was started."
    if rec.status == TaskStatus.ABANDONED:
        return f"The pull request of `{rec.task.id}` was closed; reopen it first, then retry."
    if rec.status == TaskStatus.MERGED:
        return f"`{rec.task.id}` is merged already; nothing new was started."
    return None


def own_task(run: Run, task_id: str, repo_id: int) -> TaskRecord | None:
    """The task a PR's signal names, if that PR can be its (a PR of another repository naming this task
    is not)."""
    try:
        rec = run.state.record(task_id)
    except KeyError:
        return None
    return rec if run.owns(rec, repo_id) else None


async def retry(run: Run, request: RetryRequest) -> None:
    task = next((r for r in run.state.tasks if r.task.id == request.task_id), None)
    # the command's comment, and the answer, are on the task's PR (in its repository) or on the issue
    repo = run.repo_of(task) if task is not None and request.pr_number else run.inp.repo
    number = request.pr_number or run.inp.issue_number
    key = f"{request.reason} comment={request.comment_id} n={len(run.state.notices)}"

    async def react(content: str) -> None:
        if request.comment_id is not None:
            reaction = CommentReaction(repo=repo, comment_id=request.comment_id, content=content)
            await run.github(act.REACT_TO_COMMENT, reaction)

    refusal = retry_refusal(run, request)
    if refusal is not None:
        await run.say(number, key, refusal, repo)
        return
    rec = run.state.record(request.task_id)
    await run.reload_config()
    if run.budget_left() < worst_case_cost(run.m.model, 20_000, 8192):
        await run.say(
            number, key, run.budget_message() + "; raise `budget_usd` in `.github/otto.yml` and retry.", repo
        )
        await react("-1")
        return
    run.m.budget_spent = False
    await react("eyes")
    strategy = next(
        (d.decision(rec.task.id) for d in reversed(run.state.decisions) if d.decision(rec.task.id)), None
    )
    parts = [
        f"From @{request.sender}: {request.guidance}" if request.guidance else "",
        f"The gate pilot's latest strategy: {strategy.strategy}" if strategy and strategy.strategy else "",
    ]
    run.state.notice(f"🔁 @{request.sender} {WHY[request.reason]} {rec.task.id}.")
    trigger = {
        "command": f"`/otto retry` by @{request.sender}",
        "review": f"changes requested by @{request.sender}",
        "ci": f"CI failed ({request.sender})",
    }[request.reason]
    guidance = "\n\n".join(p for p in parts if p)
    rec = await execution.attempt(run, rec.task.id, guidance=guidance, trigger=trigger)
    head = (rec.head_sha or "")[:7]
    if rec.status == TaskStatus.PASSED:
        await react("+1")
        await run.say(
            number,
            key,
            f"Pushed {head} for `{rec.task.id}` (attempt {rec.attempts}); Otto's checks pass.",
            repo,
        )
    else:
        await react("-1")
        await run.say(
            number,
            key,
            f"Attempt {rec.attempts} of `{rec.task.id}`: {execution.outcome_words(rec)}. "
            + (rec.note or "See the `otto/verify` check run for the log."),
            repo,
        )


async def on_review(run: Run, s: ReviewSignal) -> None:
    rec = own_task(run, s.task_id, s.repo_id)
    if rec is None:
        return
    if s.state == "changes_requested":
        if run.m.config.review_feedback:
            request = RetryRequest(
                task_id=s.task_id,
                guidance=s.guidance,
                sender=s.reviewer,
                pr_number=s.pr_number,
                reason="review",
                repo_id=s.repo_id,
            )
            await retry(run, request)
        return
    if rec.status == TaskStatus.MERGED:
        await run.say_on(rec, f"review={s.review_id}", f"@{s.reviewer} approved; it is already merged.")
        return
    rec.approved_sha, rec.approved_by = s.commit_id, s.reviewer
    pushed_now = s.commit_id is not None and s.commit_id == s.pr_head_sha  # GitHub's head, new to the run
    if s.commit_id != rec.head_sha and pushed_now and workflow.patched(VERIFY_PUSHED_HEADS):
        # approved right after a push whose event has not reached the run yet: wait for it a little
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(lambda: rec.head_sha == s.commit_id, timeout=PUSH_EVENT_WAIT)
    if s.commit_id != rec.head_sha:
        if workflow.patched(APPROVALS_TOLD):
            run.state.notice(
                f"@{s.reviewer} approved #{s.pr_number} ({rec.task.id}) at {(s.commit_id or '?')[:7]}: ✋ "
                f"not merged, its head is {(rec.head_sha or '?')[:7]} now."
            )
            await run.publish()
        await run.say_on(
            rec,
            f"review={s.review_id}",
            f"@{s.reviewer} approved {(s.commit_id or '?')[:7]}, but the head of this pull request is "
            f"now {(rec.head_sha or '?')[:7]}. Nothing was merged: please approve the current head.",
        )
        return
    await try_merge(run, rec)


async def on_pull_changed(run: Run, s: PullSignal) -> None:
    rec = own_task(run, s.task_id, s.repo_id)
    if rec is None:
        return
    if s.action == "synchronize":
        if s.head_sha == rec.head_sha:
            return
        if not workflow.patched(VERIFY_PUSHED_HEADS):
            rec.head_sha = s.head_sha
            rec.note = f"@{s.sender} pushed {s.head_sha[:7]}; approve the new head to merge"
            await run.publish()
            return
        await verify_pushed_head(run, rec, s)
        return
    if s.action == "reopened":
        await reopened(run, rec, s)
        return
    if s.action == "ready_for_review":
        await marked_ready(run, rec, s)
        return
    if rec.status in RESOLVED:
        return
    if s.merged:  # merged by a human on GitHub
        rec.approved_by, rec.merged_by = None, f"@{s.sender}"
        for dependent in await merged(run, rec, None):
            await try_merge(run, dependent)
        return
    rec.closed_from, rec.status = rec.status, TaskStatus.ABANDONED
    rec.note = (
        f"branch deleted by @{s.sender}, so GitHub closed the PR without merging; restore the branch and "
        "reopen the PR to take it up again"
        if s.branch_deleted
        else f"PR closed by @{s.sender} without merging; reopen it to take it up again"
    )
    for dep in run.state.tasks:
        if s.task_id in dep.task.depends_on and dep.status not in RESOLVED:
            if dep.status == TaskStatus.PENDING:
                dep.status = TaskStatus.SKIPPED
            dep.note = blocked_note(s.task_id)
    await run.publish()


def blocked_note(task_id: str) -> str:
    return f"blocked: depends on {task_id}, whose PR was closed"


async def reopened(run: Run, rec: TaskRecord, s: PullSignal) -> None:
    """A person reopened a task's PR that was closed without merging: the task is followed again, as it was
    before the close (its dependents' PRs are no longer blocked; a dependent that never ran stays skipped)."""
    if rec.status != TaskStatus.ABANDONED or rec.closed_from is None:
        return
    rec.status, rec.closed_from = rec.closed_from, None
    rec.note = f"PR reopened by @{s.sender}"
    for dep in run.state.tasks:
        if dep.note == blocked_note(rec.task.id):
            dep.note = (
                f"not started: {rec.task.id}'s PR was closed while it waited (reopened since)"
                if dep.status == TaskStatus.SKIPPED
                else ""
            )
    run.state.notice(f"↩️ @{s.sender} reopened #{s.pr_number} ({rec.task.id}): Otto follows it again.")
    await run.publish()
    if s.head_sha != rec.head_sha:  # its branch was restored, or pushed to while closed: check that head
        await verify_pushed_head(run, rec, s)


async def marked_ready(run: Run, rec: TaskRecord, s: PullSignal) -> None:
    """A person took the draft out of draft: said, with what it means (an approval still merges it)."""
    if rec.status in RESOLVED:
        return
    checks = (
        "Otto's checks pass on its head"
        if rec.status == TaskStatus.PASSED
        else "Otto's checks do not pass on its head yet"
    )
    run.state.notice(
        f"👀 @{s.sender} marked #{s.pr_number} ({rec.task.id}) ready for review; {checks}. A writer's "
        "approval merges it."
    )
    await run.publish()


def settled_or_running(rec: TaskRecord) -> bool:
    return rec.status in RESOLVED or rec.status == TaskStatus.RUNNING


async def verify_pushed_head(run: Run, rec: TaskRecord, s: PullSignal) -> None:
    """A person pushed to the task's branch: run the repository's checks on that head (Otto is the CI for its
    branches), say its truth, and merge it if it was approved and is green. While an attempt runs, it takes
    the push in itself (it rebases onto it and checks what it pushes)."""
    rec.head_sha, rec.pushed_by = s.head_sha, s.sender
    if settled_or_running(rec) or rec.pr_number is None:
        await run.publish()
        return
    ctx = run.m.context
    assert ctx is not None
    rec.verifying_sha, rec.note = s.head_sha, ""
    pushed = f"⬆️ @{s.sender} pushed {s.head_sha[:7]} to `{rec.branch}`"
    running = f"{pushed}; Otto runs the checks on it."
    run.state.notice(running)
    await run.publish()
    where = run.where(rec)
    check = VerifyHeadInput(
        run_id=run.state.run_id,
        repo=where.repo,
        clone_url=where.clone_url,
        base_branch=where.base_branch,
        branch=rec.branch,
        sha=s.head_sha,
        pusher=s.sender,
        task_id=rec.task.id,
        pr_number=rec.pr_number,
        config=where.config,
        linked=execution.mounts_for(run, rec, [run.state.record(d) for d in rec.task.depends_on]),
    )
    result = await run.git_call(act.VERIFY_HEAD, check, step=f"checking {s.head_sha[:7]}")
    if rec.head_sha != s.head_sha or result.moved:
        return  # pushed again meanwhile: the newer head's own check answers
    rec.verifying_sha = None
    if settled_or_running(rec):  # merged, closed or retried meanwhile
        await run.publish()
        return
    rec.status = TaskStatus.PASSED if result.passed else TaskStatus.FAILED
    rec.failures = result.failures
    rec.verify_log_tail = result.log_tail
    failing = f" ({result.failures} failing)" if result.failures else ""
    verdict = "✅ they pass" if result.passed else f"❌ they fail{failing}"
    run.state.notices = [
        f"{pushed}; Otto ran the checks on it: {verdict}." if n == running else n for n in run.state.notices
    ]
    await run.publish()
    if rec.approved_sha == rec.head_sha:  # approved while its checks ran: now merge, or say why not
        await try_merge(run, rec)


async def on_issue_edited(run: Run, edit: EditSignal) -> None:
    """Acknowledged, with who and when. The model never reads an edit on its own: while the plan waits for
    approval a writer's `/otto plan` plans again from the issue as it reads then; otherwise the run keeps the
    text it was labeled with (a new labeling after this run reads the issue anew)."""
    if run.state.phase.final:
        return
    label = run.inp.trigger.label
    if edit.fields == ["label"]:
        run.state.notice(
            f"🏷️ @{edit.sender} removed the `{label}` label at {workflow.now():%H:%M} UTC; that stops "
            "nothing (`/otto stop` does). Adding it again once this run has ended starts a new run."
        )
        await run.publish()
        return
    run.m.edited_by = edit.sender
    what = " and ".join(edit.fields) or "text"
    said = f"✏️ @{edit.sender} edited the issue's {what} at {workflow.now():%H:%M} UTC."
    if run.state.phase == RunPhase.PLAN_REVIEW:
        said += (
            " The plan above was made from the text as labeled: the edit does not reach the model unless a "
            "writer comments `/otto plan`, which plans again from the issue as it reads now."
        )
    else:
        said += (
            " This run goes on from the text it was labeled with: the edit does not reach the model. To work "
            f"from the new text, stop this run (`/otto stop`) and add the `{label}` label again: a new run "
            "reads the issue as it is then."
        )
    run.state.notice(said)
    await run.publish()


async def on_base_moved(run: Run, s: BaseSignal) -> None:
    """The base branch moved: if the task's PR now conflicts with it, say so (on the PR and in the status)
    with the way out; once it no longer conflicts (a person resolved it), the warning goes."""
    rec = own_task(run, s.task_id, s.repo_id)
    if rec is None:
        return
    if rec.pr_number != s.pr_number or rec.status in RESOLVED or rec.status == TaskStatus.RUNNING:
        return
    mergeable = await run.github(
        act.PULL_MERGEABLE, TaskPullQuery(repo=run.repo_of(rec), pr_number=s.pr_number)
    )
    if mergeable is None:  # closed meanwhile: its own event answers
        return
    if mergeable:
        if rec.conflicts_at is not None:
            rec.conflicts_at = None
            execution.conflict_settled(run, rec, f"it merges cleanly again after {s.sha[:7]}")
            await run.publish()
        return
    known = rec.conflicts_at is not None
    rec.conflicts_at = s.sha
    if known:
        return
    pr = f"{rec.repo.full_name}#{s.pr_number}" if rec.repo else f"#{s.pr_number}"
    text = (
        f"⚠️ `{s.branch}` moved to {s.sha[:7]} (by @{s.sender}) and {pr} ({rec.task.id}) now "
        f"conflicts with it, so it can't be merged. Comment `/otto retry` on {pr}: Otto merges "
        f"`{s.branch}` into the branch, resolves the conflicts and runs the checks again."
    )
    run.state.notice(text)
    await run.say_on(rec, f"conflict sha={s.sha}", text)
    await run.publish()


async def on_ci_failed(run: Run, s: CiSignal) -> None:
    rec = own_task(run, s.task_id, s.repo_id)
    if rec is None:
        return
    if s.head_sha != rec.head_sha or rec.status in RESOLVED or rec.status == TaskStatus.RUNNING:
        return  # an old commit, or already being worked on
    if s.head_sha in rec.ci_failed_shas:
        return  # several failing checks (check runs and their suite) on one head: one answer
    rec.ci_failed_shas.append(s.head_sha)
    limit = run.m.config.max_ci_fix_rounds
    if rec.ci_fix_rounds >= limit:
        await run.say_on(
            rec,
            f"ci budget sha={s.head_sha}",
            f"CI ({s.app_name}) still fails on {s.head_sha[:7]}. The CI fix budget "
            f"({plural(limit, 'round')}) is spent, so Otto stops here: over to you.",
        )
        return
    rec.ci_fix_rounds += 1
    report = await run.github(act.CI_REPORT, CiQuery(repo=run.repo_of(rec), head_sha=s.head_sha))
    guidance = (
        f"CI ({s.app_name}) failed on {s.head_sha[:7]} "
        f"(CI fix round {rec.ci_fix_rounds} of {limit}):\n{report}"
    )
    await retry(
        run,
        RetryRequest(
            task_id=s.task_id,
            guidance=guidance,
            sender=s.app_name,
            pr_number=s.pr_number,
            reason="ci",
            repo_id=s.repo_id,
        ),
    )
