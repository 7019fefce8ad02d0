"""Approvals that merge: SHA-guarded, in dependency order (``app.domain.merging`` plans, this carries it
out), `/otto merge` on purpose, and what follows a merge (dependents rebased and retargeted)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.io import (
        BranchInput,
        MergeInput,
        RebaseInput,
        RetargetInput,
        RevertInput,
        VerifyHeadInput,
    )
    from app.contracts.messages import MergeRequest, RevertRequest
    from app.domain.links import attempt_url
    from app.domain.merging import Merge, Refuse, Verifying, WaitFor, merge_plan, waiting_dependents
    from app.domain.replies import merged_note, merged_on_purpose, red_on_github, refused_merge
    from app.domain.run import TaskRecord, TaskStatus
    from app.domain.scheduling import RESOLVED, pr_base, same_repo
    from app.workflows.run.context import Run
    from app.workflows.run.execution import mounts_for


def merge_refusal(run: Run, request: MergeRequest) -> str | None:
    """Why `/otto merge` can't merge (the update's validator answers with it), or None."""
    try:
        rec = run.state.record(request.task_id)
    except KeyError:
        return f"This run has no task `{request.task_id}`."
    if not run.owns(rec, request.repo_id):
        return "This pull request is not that task's; nothing was merged."
    if rec.status == TaskStatus.MERGED:
        return f"Task `{rec.task.id}` is already merged."
    if rec.pr_number is None or rec.head_sha is None:
        return f"Task `{rec.task.id}` has no pull request to merge."
    if rec.status == TaskStatus.RUNNING:
        return f"Task `{rec.task.id}` is running (attempt {rec.attempts}); merge it once the attempt is done."
    if rec.status == TaskStatus.ABANDONED:
        return "This pull request was closed; reopen it first."
    return None


async def merge_on_purpose(run: Run, request: MergeRequest) -> None:
    """`/otto merge` by a writer: merge the current head as it is, and say so in the PR and the status."""
    rec = run.state.record(request.task_id)
    rec.override_by = request.sender
    rec.approved_sha, rec.approved_by = rec.head_sha, request.sender
    run.state.notice(f"⚠️ @{request.sender} merged `{rec.task.id}` on purpose with `/otto merge`.")
    await try_merge(run, rec, override=True)


APPROVALS_TOLD = "approvals-told"  # patched(): each approval and its outcome is a notice (the timeline)
REFUSED_BECAUSE = {
    "red": "its checks are red",
    "running": "it is running again",
    "skipped": "the gate pilot skipped it",
    "abandoned": "its PR is closed",
}


def pr_ref(run: Run, here: TaskRecord, other: TaskRecord) -> str:
    """``other``'s PR as a link from ``here``'s: ``#4``, or ``acme/api#4`` in another repository."""
    if other.pr_number is None:
        return other.task.id
    there = run.repo_of(other)
    prefix = "" if there.repo_id == run.repo_of(here).repo_id else there.full_name
    return f"{prefix}#{other.pr_number}"


async def half_merged(run: Run, rec: TaskRecord, why: str) -> None:
    """A task of a change across repositories did not merge while another repository's part did: the
    status says exactly what is merged where and what is not (only runs across repositories say it)."""
    merged = [t for t in run.state.tasks if t.status == TaskStatus.MERGED and not same_repo(t, rec)]
    if not merged or rec.pr_number is None:
        return
    done = ", ".join(f"{run.repo_of(t).full_name}#{t.pr_number}" for t in merged)
    this = f"{run.repo_of(rec).full_name}#{rec.pr_number}"
    run.state.notice(
        f"⚠️ This change is half merged across repositories: {done} merged; {this} did not ({why}). Resolve "
        f"that and approve {this} again, or revert what merged (its merge commit) by hand."
    )
    await run.publish()


async def recheck(run: Run, rec: TaskRecord, merged_dep: TaskRecord) -> None:
    """``merged_dep`` (another repository) merged: ``rec``'s checks run again on its head, now against that
    repository's ``main``, before ``rec`` can merge; the status says how it went."""
    if rec.status in RESOLVED or rec.status == TaskStatus.RUNNING or not rec.pr_number or not rec.head_sha:
        return
    where = run.where(rec)
    there = f"{run.repo_of(merged_dep).full_name}#{merged_dep.pr_number}"
    deps = [run.state.record(d) for d in rec.task.depends_on]
    check = VerifyHeadInput(
        run_id=run.state.run_id,
        repo=where.repo,
        clone_url=where.clone_url,
        base_branch=where.base_branch,
        branch=rec.branch,
        sha=rec.head_sha,
        pusher="",
        task_id=rec.task.id,
        pr_number=rec.pr_number,
        config=where.config,
        linked=mounts_for(run, rec, deps),
        recheck=f"checked again after {there} merged",
    )
    result = await run.git_call(act.VERIFY_HEAD, check, step=f"checking {rec.task.id} again")
    if result.moved:
        return  # pushed meanwhile: that head's own check answers
    rec.status = TaskStatus.PASSED if result.passed else TaskStatus.FAILED
    rec.failures, rec.verify_log_tail = result.failures, result.log_tail
    verdict = "✅ they pass" if result.passed else "❌ they fail, so it is not merged"
    run.state.notice(
        f"🔁 {pr_ref(run, merged_dep, rec)} ({rec.task.id}) checked again against {there} merged: {verdict}."
    )
    await run.publish()


def revert_refusal(run: Run) -> str | None:
    """Why `/otto revert` has nothing to do (the update's validator answers with it), or None."""
    merged = [t for t in run.state.tasks if t.status == TaskStatus.MERGED]
    repos = {run.repo_of(t).repo_id for t in run.state.tasks if t.pr_number}
    if not merged:
        return "Nothing of this run is merged, so there is nothing to revert."
    if len(repos) < 2:
        return (
            "`/otto revert` is for a change across repositories that merged only in part; revert this one "
            "by hand."
        )
    if all(t.status == TaskStatus.MERGED for t in run.state.tasks if t.pr_number):
        return "Every part of this change is merged; revert the parts you want by hand."
    return None


async def revert_merged(run: Run, request: RevertRequest) -> None:
    """A draft PR reverting each merged task's merge commit, in its repository, said in the status."""
    opened: list[str] = []
    for rec in [t for t in run.state.tasks if t.status == TaskStatus.MERGED and t.merged_sha and t.pr_number]:
        where = run.where(rec)
        assert rec.merged_sha is not None
        assert rec.pr_number is not None
        outcome = await run.git_call(
            act.REVERT_MERGE,
            RevertInput(
                run_id=run.state.run_id,
                repo=where.repo,
                clone_url=where.clone_url,
                base_branch=where.base_branch,
                merge_sha=rec.merged_sha,
                merge_commit=where.config.merge_method == "merge",
                branch=f"{rec.branch}-revert",
                pr_number=rec.pr_number,
                title=rec.task.title,
                issue_ref=f"{run.inp.repo.full_name}#{run.inp.issue_number}",
                asked_by=request.sender,
            ),
        )
        opened.append(f"{where.repo.full_name}#{outcome.pr_number} (reverts #{rec.pr_number})")
    run.state.notice(
        f"↩️ @{request.sender} asked to revert what merged: "
        + (", ".join(opened) if opened else "nothing had a merge commit to revert")
        + "."
    )
    await run.publish()


async def approval(run: Run, rec: TaskRecord, outcome: str) -> None:
    """An approval and what became of it, in the status and Mission Control's timeline (the PR gets the
    full answer)."""
    if not workflow.patched(APPROVALS_TOLD):
        return
    who = f"@{rec.approved_by}" if rec.approved_by else "An approval"
    where = f"{rec.repo.full_name}#" if rec.repo else "#"  # the status is on the issue's repository
    run.state.notice(f"{who} approved {where}{rec.pr_number} ({rec.task.id}): {outcome}.")
    await run.publish()


async def try_merge(run: Run, rec: TaskRecord, *, override: bool = False) -> None:
    follow_ups: list[TaskRecord] = []
    async with run.merge_lock:
        override = override or rec.override_by is not None
        plan = merge_plan(run.state, rec, override=override)
        if isinstance(plan, Refuse):
            assert rec.pr_number is not None
            link = attempt_url(run.inp.limits.public_url, run.state.run_id, rec.task.id, rec.attempts)
            approver = rec.approved_by or "someone"
            await approval(run, rec, f"✋ not merged, {REFUSED_BECAUSE.get(plan.reason, plan.reason)}")
            rec.approved_sha = None
            await run.say_on(
                rec,
                f"refused sha={rec.head_sha} by={approver}",
                refused_merge(plan.reason, rec, approver, link),
            )
            return
        if isinstance(plan, Verifying):
            assert rec.pr_number is not None
            who = f" (pushed by @{rec.pushed_by})" if rec.pushed_by else ""
            await approval(run, rec, f"⏳ it merges once Otto's checks pass on {plan.sha[:7]}")
            await run.say_on(
                rec,
                f"verifying sha={plan.sha} by={rec.approved_by}",
                f"Approved. Otto is running the repository's checks on {plan.sha[:7]}{who}: this merges when "
                "they pass, and Otto says so here if they don't.",
            )
            return
        if isinstance(plan, WaitFor):
            assert rec.pr_number is not None
            rec.waiting_on = plan.dependencies
            prs = ", ".join(pr_ref(run, rec, run.state.record(d)) for d in plan.dependencies)
            await approval(run, rec, f"⏳ it merges after {prs}")
            await run.say_on(
                rec, f"waiting sha={rec.approved_sha}", f"Approved. This will merge after {prs}."
            )
            await run.publish()
            return
        if not isinstance(plan, Merge):
            return
        assert rec.pr_number is not None
        outcome = await run.github(
            act.MERGE_TASK_PULL,
            MergeInput(
                repo=run.repo_of(rec),
                pr_number=rec.pr_number,
                approved_sha=plan.sha,
                method=run.where(rec).config.merge_method,
                title=rec.task.title,
                override=override,
                approved_by=rec.approved_by,
            ),
        )
        if outcome.result in ("merged", "already_merged"):
            rec.merged_by = outcome.merged_by
            await approval(run, rec, f"✅ merged {plan.sha[:7]}")
            if rec.override_by:
                await run.say_on(rec, f"override sha={plan.sha}", merged_on_purpose(rec.override_by, rec))
            follow_ups = await merged(run, rec, outcome.merge_sha)
        else:
            await half_merged(run, rec, outcome.message or outcome.result.replace("_", " "))
        if outcome.result == "red":
            await approval(run, rec, "✋ not merged, GitHub reports failing checks")
            rec.approved_sha = None
            await run.say_on(
                rec,
                f"red sha={plan.sha}",
                red_on_github(rec.approved_by or "someone", outcome.failing, outcome.message),
            )
        elif outcome.result == "head_moved":
            await approval(run, rec, f"✋ not merged, its head moved after {plan.sha[:7]} was approved")
            rec.approved_sha = None
            await run.say_on(
                rec,
                f"moved sha={plan.sha}",
                f"The head of this pull request moved after it was approved ({plan.sha[:7]}), so "
                "nothing was merged. Please review and approve the current head.",
            )
        elif outcome.result == "closed":
            await approval(run, rec, "✋ not merged, the PR is closed")
            await run.say_on(
                rec,
                f"closed sha={plan.sha}",
                "Approved, but this pull request is closed, so nothing was merged. Reopen it and approve "
                "again.",
            )
        elif outcome.result == "not_mergeable":
            await approval(run, rec, f"✋ not merged, {outcome.message}")
            rec.conflicts_at = rec.conflicts_at or ""  # the next attempt merges the base in
            await run.say_on(
                rec,
                f"unmergeable sha={plan.sha}",
                f"Approved, but it can't be merged: {outcome.message}. Resolve that and approve again, or "
                "comment `/otto retry`: Otto merges the base branch in and runs the checks again.",
            )
    for dependent in follow_ups:
        await try_merge(run, dependent)


async def merged(run: Run, rec: TaskRecord, merge_sha: str | None) -> list[TaskRecord]:
    """Record a merge; retarget (and for squash/rebase: rebase) dependents; delete the branch."""
    ctx = run.m.context
    assert ctx is not None
    old_head = rec.head_sha
    rec.status = TaskStatus.MERGED
    rec.merged_sha = merge_sha
    rec.waiting_on = []
    rec.note = merged_note(rec.merged_by, rec.approved_by, rec.override_by)
    method = run.where(rec).config.merge_method
    for dep in run.state.tasks:
        if rec.task.id not in dep.task.depends_on or dep.pr_number is None or dep.status in RESOLVED:
            continue
        if dep.pr_base == rec.branch:
            new_base = pr_base(run.state, dep, run.where(dep).base_branch)
            await run.github(
                act.RETARGET_PULL,
                RetargetInput(repo=run.repo_of(dep), pr_number=dep.pr_number, base=new_base),
            )
            dep.pr_base = new_base
        if method != "merge" and old_head and dep.status != TaskStatus.RUNNING:
            await rebase_dependent(run, dep, rec, old_head)
    for dep in run.state.tasks:  # a dependent elsewhere: checked again against the merged main
        if rec.task.id in dep.task.depends_on and not same_repo(dep, rec):
            await recheck(run, dep, rec)
    if run.inp.limits.delete_merged_branches:
        await run.github(act.DELETE_BRANCH, BranchInput(repo=run.repo_of(rec), branch=rec.branch))
    await run.publish()
    return waiting_dependents(run.state, rec)


async def rebase_dependent(run: Run, dep: TaskRecord, merged_rec: TaskRecord, old_head: str) -> None:
    ctx = run.m.context
    assert ctx is not None
    assert dep.pr_number is not None
    base = run.where(dep).base_branch
    new_head = await run.git_call(
        act.REBASE_BRANCH,
        RebaseInput(
            run_id=run.state.run_id,
            repo=run.repo_of(dep),
            clone_url=run.where(dep).clone_url,
            branch=dep.branch,
            upstream_sha=old_head,
            onto=base,
            expected_sha=dep.head_sha,
        ),
    )
    if new_head is None:
        dep.note = f"rebasing onto {base} after #{merged_rec.pr_number} conflicted; needs a human or a retry"
        return
    if new_head != dep.head_sha:
        dep.head_sha = new_head
        if dep.approved_sha:
            await run.say_on(
                dep,
                f"rebased sha={new_head}",
                f"Rebased onto `{base}` after #{merged_rec.pr_number} was "
                f"{run.m.config.merge_method}-merged. The approval was for the old head; "
                f"approve {new_head[:7]} to merge.",
            )
