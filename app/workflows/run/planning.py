"""Planning: wait for the installation's slot, read the issue (as labeled) and the repository's settings,
classify the issue, plan the tasks."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.io import GateInput, LinkedQuery, ListFilesInput, LoadIssueInput, ReactInput
    from app.domain.linking import admit, may_flow, withheld_note
    from app.domain.plan import Plan
    from app.domain.repo_config import RepoConfigError, parse_repo_config
    from app.domain.run import IssueContext, RepoRef, RunPhase
    from app.domain.scheduling import add_tasks
    from app.workflows.calls import call
    from app.workflows.run.context import Run


async def slot(run: Run, action: str) -> None:
    gate = GateInput(installation_id=run.inp.repo.installation_id, run_id=run.state.run_id, action=action)
    await call(act.GATE, gate)


LINKED_REPOSITORIES = "linked-repositories"  # patched(): `repositories:` in the settings are checked


async def linked_files(run: Run) -> dict[str, list[str]]:
    """The file lists of the other repositories whose content may reach this run, for the planner."""
    out: dict[str, list[str]] = {}
    for linked in run.state.linked:
        if not linked.shown:
            continue
        ref = RepoRef(
            installation_id=run.inp.repo.installation_id,
            owner=linked.repo.split("/")[0],
            name=linked.repo.split("/")[1],
            repo_id=linked.repo_id,
        )
        listing = ListFilesInput(repo=ref, clone_url=linked.clone_url, branch=linked.default_branch)
        out[linked.repo] = (await run.git_call(act.LIST_REPO_FILES, listing)).files
    return out


async def link_repositories(run: Run, private: bool) -> None:
    """The other repositories the settings name: kept when the installation reaches them and the labeler may
    do there what the run would (else left out, or read-only), each such decision said in the status."""
    labeler = run.inp.trigger.sender
    query = LinkedQuery(repo=run.inp.repo, login=labeler, linked=run.m.config.repositories)
    statuses = await run.github(act.LINKED_REPOSITORIES, query)
    run.state.linked, said = admit(statuses, labeler, run.inp.repo.full_name)
    for line in said:
        run.state.notice(f"🔗 {line}.")
    consent = {n.lower() for n in run.m.config.share_with}
    for linked in run.state.linked:
        linked.shown = may_flow(linked, private, run.inp.repo.full_name)
        if not linked.shown:
            run.state.notice(withheld_note(linked) + ".")
        elif (
            linked.access == "write" and private and not linked.private and linked.repo.lower() not in consent
        ):
            # a task there would carry this private issue's content into a public pull request
            linked.access = "read"
            run.state.notice(
                f"🔒 `{linked.repo}` is public and this issue's repository is private: no task changes it "
                "(this repository's `share_with:` can allow it)."
            )


async def acquire_slot(run: Run) -> None:
    """Wait in line when the installation already has its maximum of runs working."""
    m = run.m
    await slot(run, "acquire")
    m.holding_slot = True
    while not m.slot_granted and not run.stopped():
        await workflow.wait_condition(lambda: m.slot_granted or run.stopped() or m.queue_news)
        if m.queue_news and not m.slot_granted:
            m.queue_news = False
            run.state.phase = RunPhase.QUEUED
            run.state.reason = (
                f"Queued: #{m.queue_position} in line. This installation already has its maximum of "
                "runs working; this one starts as soon as one of them is done."
            )
            await run.publish()
    run.state.reason = ""


async def release_slot(run: Run) -> None:
    if run.m.holding_slot:
        run.m.holding_slot = False
        await slot(run, "release")


async def plan(run: Run) -> None:
    """From the label to a plan of tasks in the state; raises ``RunEnded`` when the run ends here."""
    repo, number, m = run.inp.repo, run.inp.issue_number, run.m
    await run.github(act.REACT_TO_ISSUE, ReactInput(repo=repo, issue_number=number, content="eyes"))
    await acquire_slot(run)
    if run.stopped():
        return
    run.state.phase = RunPhase.PLANNING
    await run.publish()

    issue = await run.github(act.LOAD_ISSUE, LoadIssueInput(repo=repo, issue_number=number))
    try:
        m.config = parse_repo_config(issue.config_text)
    except RepoConfigError as e:
        raise run.end(RunPhase.FAILED, f"{e}. Fix the file and add the label again.") from e
    run.set_budget()
    linking = bool(m.config.repositories) and workflow.patched(LINKED_REPOSITORIES)
    if linking:
        await link_repositories(run, issue.private)
    base = m.config.base_branch or issue.default_branch
    files = await run.git_call(
        act.LIST_REPO_FILES, ListFilesInput(repo=repo, clone_url=issue.clone_url, branch=base)
    )
    labeled = run.inp.trigger  # the text the maintainer saw when labeling, not a later edit
    m.context = IssueContext(
        title=labeled.issue_title if labeled.issue_title is not None else issue.title,
        body=labeled.issue_body if labeled.issue_body is not None else issue.body,
        author=issue.author,
        html_url=issue.html_url,
        base_branch=base,
        clone_url=issue.clone_url,
        config=m.config,
        repo_files=files.files,
        repo_files_total=files.total,
        private=issue.private,
    )
    if linking:
        m.context.linked_files = await linked_files(run)
        m.context.writable = [x.repo for x in run.state.linked if x.access == "write" and x.shown]
    limits = run.inp.limits
    m.model = m.config.model or limits.model
    m.max_tasks = min(m.config.max_tasks or limits.max_tasks, limits.max_tasks)

    classified = await run.model_call(act.CLASSIFY, run.model_input())
    run.spend(classified.usage)
    c = classified.classification
    run.state.classification_summary = c.summary
    if not c.actionable:
        run.state.questions = c.questions or ["What exactly should change, and how will we know it works?"]
        raise run.end(RunPhase.NEEDS_INFO, "This issue isn't actionable yet. " + (c.summary or ""))

    try:
        planned = await run.model_call(act.PLAN, run.model_input())
    except ActivityError as e:
        run.spend_failed(e)
        raise
    run.spend(planned.usage)
    the_plan = Plan(summary=planned.plan_summary, tasks=planned.tasks)
    run.state.plan_summary = the_plan.summary
    add_tasks(run.state, the_plan.tasks, first_batch=0)
    if m.config.plan_approval:
        await await_approval(run)
        if run.stopped():
            return
    run.state.phase = RunPhase.RUNNING
    m.planned = True
    await run.publish()


PLAN_FROM_EDITED_ISSUE = (
    "plan-from-edited-issue"  # patched(): `/otto plan` after an edit reads the issue again
)


async def read_issue_again(run: Run) -> None:
    ctx = run.m.context
    assert ctx is not None
    issue = await run.github(
        act.LOAD_ISSUE, LoadIssueInput(repo=run.inp.repo, issue_number=run.inp.issue_number)
    )
    ctx.title, ctx.body = issue.title, issue.body


async def await_approval(run: Run) -> None:
    """`plan_approval: true`: post the plan and wait — holding no slot and spending nothing — for a writer's
    `/otto go` (work starts), `/otto plan <feedback>` (plan again with it) or `/otto stop`."""
    m, state = run.m, run.state
    while True:
        state.phase = RunPhase.PLAN_REVIEW
        state.reason = (
            "The plan is ready. A writer can comment `/otto go` to start the work, `/otto plan <feedback>` "
            "to plan again with feedback, or `/otto stop` to end here. Nothing runs or costs anything until "
            "then."
        )
        await release_slot(run)
        await run.publish()
        await workflow.wait_condition(
            lambda: run.stopped() or m.go_by is not None or m.plan_feedback_by is not None
        )
        if run.stopped():
            return
        if m.go_by is not None:
            state.notice(f"▶️ @{m.go_by} approved the plan.")
            state.reason = ""
            m.slot_granted = False
            await acquire_slot(run)
            return
        feedback, by = m.plan_feedback, m.plan_feedback_by
        m.plan_feedback, m.plan_feedback_by = "", None
        state.phase = RunPhase.PLANNING
        edited_by, m.edited_by = m.edited_by, None
        if edited_by is not None and workflow.patched(PLAN_FROM_EDITED_ISSUE):
            await read_issue_again(run)  # a writer's command is what lets an edit reach the model
            state.notice(
                f"🗺️ @{by} asked for a new plan from the issue as it reads now (edited by @{edited_by})."
            )
        else:
            state.notice(f"🗺️ @{by} asked for a new plan.")
        await run.publish()
        previous = [r.task for r in state.tasks]
        inp = run.model_input().model_copy(update={"previous_plan": previous, "feedback": feedback})
        try:
            planned = await run.model_call(act.PLAN, inp)
        except ActivityError as e:
            run.spend_failed(e)
            raise
        run.spend(planned.usage)
        state.plan_summary = planned.plan_summary
        state.tasks = []
        add_tasks(state, planned.tasks, first_batch=0)
