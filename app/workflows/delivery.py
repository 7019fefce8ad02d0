"""DeliveryWorkflow: one per webhook delivery id (the durable de-duplication record).

It authorizes the sender against GitHub (write, maintain or admin; fail closed), then starts or signals
the issue's RunWorkflow, or answers the comment (help, refusal, "no run here"). The App uninstalled or
suspended, or repositories taken out of its installation, stop the runs there (``app.workflows.lifecycle``).
A delivery for an installation GitHub won't serve ends at the first activity that needs it: said once in the
worker's log, never retried.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.ids import run_workflow_id
    from app.contracts.io import (
        CommentReaction,
        PermissionQuery,
        Refusal,
        ReplyInput,
        ReviewQuery,
        SignalInput,
        TaskPull,
        TaskPullQuery,
        TaskPullsQuery,
    )
    from app.contracts.messages import (
        BaseMoved,
        BaseSignal,
        CiFailure,
        CiSignal,
        CommandRequest,
        DeliveryRequest,
        EditSignal,
        InstallationChange,
        IssueClosed,
        IssueEdited,
        MergeRequest,
        PlanCommand,
        PullChange,
        PullSignal,
        RetryRequest,
        RevertRequest,
        ReviewRequest,
        ReviewSignal,
        RunMessage,
        StartRun,
        StopRequest,
    )
    from app.domain.commands import HELP
    from app.domain.run import WRITE_PERMISSIONS, RepoRef
    from app.workflows.calls import call, default_patience, github, outage_of
    from app.workflows.lifecycle import installation_changed, installation_unavailable


ANSWER_ENDED_RUN = (
    "answer-ended-run"  # patched(): a push, reopen or approval on an ended run's PR is answered
)

_WHAT = {
    "StartRun": "label",
    "CommandRequest": "command",
    "ReviewRequest": "review",
    "PullChange": "change to the pull request",
    "IssueClosed": "closing of the issue",
    "IssueEdited": "edit of the issue",
    "BaseMoved": "push to the base branch",
    "CiFailure": "CI result",
}


@workflow.defn
class DeliveryWorkflow:
    @workflow.run
    async def run(self, request: DeliveryRequest) -> str:
        try:
            return await self._dispatch(request)
        except ActivityError as e:
            if installation_unavailable(e):
                # said once by the activity (installation and account); not retried, nothing to answer
                return "installation unavailable: nothing done"
            outage = outage_of(e)
            if outage is None:
                raise
            await self._tell_not_done(request, *outage)
            return f"not done: {outage[0]} did not answer ({outage[1]}) before the deadline"

    async def _tell_not_done(self, request: DeliveryRequest, service: str, detail: str) -> None:
        """An accepted delivery whose effect an outage outlasted: said where it happened (one try; GitHub
        may well still be down, so the worker's log says it too)."""
        number = (
            getattr(request, "pr_number", None)
            or getattr(request, "number", None)
            or getattr(request, "issue_number", None)
        )
        hours = default_patience().policy.deadline_s / 3600
        what = _WHAT.get(type(request).__name__, "event")
        words = (
            f"Otto could not act on this {what}: {service} did not answer ({detail}) for {hours:g} h, so "
            "nothing was done. Please do it again."
        )
        workflow.logger.warning("delivery not done: %s", words)
        if not isinstance(number, int) or isinstance(request, InstallationChange):
            return
        key = f"outage delivery={workflow.info().workflow_id}"
        try:
            await call(
                act.REPLY,
                ReplyInput(repo=request.repo, number=number, key=key, body=words),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError:
            return

    async def _dispatch(self, request: DeliveryRequest) -> str:
        if isinstance(request, InstallationChange):
            return await installation_changed(request)
        if isinstance(request, StartRun):
            return await self._start(request)
        if isinstance(request, CommandRequest):
            return await self._command(request)
        if isinstance(request, ReviewRequest):
            return await self._review(request)
        if isinstance(request, PullChange):
            return await self._pull_change(request)
        if isinstance(request, IssueClosed):
            return await self._issue_closed(request)
        if isinstance(request, IssueEdited):
            return await self._issue_edited(request)
        if isinstance(request, BaseMoved):
            return await self._base_moved(request)
        return await self._ci(request)

    async def _base_moved(self, request: BaseMoved) -> str:
        """The default branch moved: each run with an open task PR into it checks whether it now conflicts."""
        pulls = await github(act.LIST_TASK_PULLS, TaskPullsQuery(repo=request.repo, base=request.branch))
        told = 0
        for pull in pulls:
            signal = BaseSignal(
                task_id=pull.task_id,
                pr_number=pull.pr_number,
                branch=request.branch,
                sha=request.sha,
                sender=request.sender,
                repo_id=request.repo.repo_id,
            )
            told += await self._signal(pull.run_id, RunMessage.BASE_MOVED, signal.model_dump(mode="json"))
        return f"told {told} run(s)"

    async def _is_writer(self, request: StartRun | CommandRequest | ReviewRequest, login: str) -> bool:
        permission = await github(act.CHECK_PERMISSION, PermissionQuery(repo=request.repo, login=login))
        return permission in WRITE_PERMISSIONS

    async def _task_pull(self, repo: RepoRef, pr_number: int) -> TaskPull | None:
        return await github(act.RESOLVE_TASK_PULL, TaskPullQuery(repo=repo, pr_number=pr_number))

    async def _signal(
        self, run_id: str, signal: str, payload: dict[str, object], latest: bool = False
    ) -> bool:
        inp = SignalInput(run_id=run_id, signal=signal, payload=payload, latest=latest)
        outcome = await call(act.SIGNAL_RUN, inp)
        return outcome.delivered

    async def _review(self, request: ReviewRequest) -> str:
        pull = await self._task_pull(request.repo, request.pr_number)
        if pull is None:
            return "not an Otto PR"
        if not await self._is_writer(request, request.reviewer):
            if request.state == "approved":
                await github(
                    act.REPLY,
                    ReplyInput(
                        repo=request.repo,
                        number=request.pr_number,
                        key=f"review={request.review_id}",
                        body=f"Thanks @{request.reviewer}. Only an approval by someone with write access to "
                        "the repository merges this pull request, so nothing was merged.",
                    ),
                )
            return "review by a non-writer"
        guidance = ""
        if request.state == "changes_requested":
            guidance = await github(
                act.REVIEW_GUIDANCE,
                ReviewQuery(
                    repo=request.repo,
                    pr_number=request.pr_number,
                    review_id=request.review_id,
                    body=request.body,
                    reviewer=request.reviewer,
                ),
            )
        signal = ReviewSignal(
            task_id=pull.task_id,
            pr_number=request.pr_number,
            state=request.state,
            commit_id=request.commit_id,
            reviewer=request.reviewer,
            review_id=request.review_id,
            guidance=guidance,
            pr_head_sha=pull.head_sha,
            repo_id=request.repo.repo_id,
        )
        delivered = await self._signal(pull.run_id, RunMessage.REVIEW, signal.model_dump(mode="json"))
        if not delivered and request.state == "approved" and workflow.patched(ANSWER_ENDED_RUN):
            await self._run_has_ended(request.repo, request.pr_number, request.delivery_id, request.reviewer)
        return "signalled review" if delivered else "no run"

    async def _pull_change(self, request: PullChange) -> str:
        pull = await self._task_pull(request.repo, request.pr_number)
        if pull is None:
            return "not an Otto PR"
        signal = PullSignal(
            task_id=pull.task_id,
            pr_number=request.pr_number,
            action=request.action,
            merged=request.merged,
            head_sha=request.head_sha,
            sender=request.sender,
            branch_deleted=pull.branch_deleted,
            repo_id=request.repo.repo_id,
        )
        delivered = await self._signal(pull.run_id, RunMessage.PULL_CHANGED, signal.model_dump(mode="json"))
        if not delivered and request.action != "closed" and workflow.patched(ANSWER_ENDED_RUN):
            await self._run_has_ended(request.repo, request.pr_number, request.delivery_id, request.sender)
        return "signalled pull change" if delivered else "no run"

    async def _run_has_ended(self, repo: RepoRef, pr_number: int, delivery_id: str, sender: str) -> None:
        """A person acted on a PR whose run is over: said, so nobody waits for Otto to check or merge it."""
        await github(
            act.REPLY,
            ReplyInput(
                repo=repo,
                number=pr_number,
                key=f"delivery={delivery_id}",
                body=f"@{sender} Otto's run for this pull request has ended, so Otto no longer "
                "follows it: it does not check new pushes or merge on approval. Merge it yourself, or add "
                "the trigger label to the issue again for a new run.",
            ),
        )

    async def _issue_closed(self, request: IssueClosed) -> str:
        """Closing the issue stops its run (GitHub decided who may close it; there is nothing to answer)."""
        stop = StopRequest(sender=request.sender, number=request.issue_number)
        run_id = run_workflow_id(request.repo.repo_id, request.issue_number)
        delivered = await self._signal(run_id, RunMessage.STOP, stop.model_dump(mode="json"), latest=True)
        return "stopping the run" if delivered else "no run"

    async def _issue_edited(self, request: IssueEdited) -> str:
        edit = EditSignal(sender=request.sender, fields=request.fields)
        run_id = run_workflow_id(request.repo.repo_id, request.issue_number)
        delivered = await self._signal(
            run_id, RunMessage.ISSUE_EDITED, edit.model_dump(mode="json"), latest=True
        )
        return "told the run" if delivered else "no run"

    async def _ci(self, request: CiFailure) -> str:
        signalled = 0
        for number in request.pr_numbers:
            pull = await self._task_pull(request.repo, number)
            if pull is None:
                continue
            signal = CiSignal(
                task_id=pull.task_id,
                pr_number=number,
                head_sha=request.head_sha,
                app_name=request.app_name,
                repo_id=request.repo.repo_id,
            )
            signalled += await self._signal(pull.run_id, RunMessage.CI_FAILED, signal.model_dump(mode="json"))
        return f"signalled {signalled} run(s)"

    async def _start(self, request: StartRun) -> str:
        if not await self._is_writer(request, request.trigger.sender):
            await github(
                act.POST_REFUSAL,
                Refusal(
                    repo=request.repo,
                    issue_number=request.issue_number,
                    sender=request.trigger.sender,
                    delivery_id=request.trigger.delivery_id,
                    what="start an Otto run",
                ),
            )
            return "refused"
        return await call(act.START_OR_SIGNAL_RUN, request)

    async def _reply(self, request: CommandRequest, body: str) -> None:
        await github(
            act.REPLY,
            ReplyInput(
                repo=request.repo, number=request.number, key=f"delivery={request.delivery_id}", body=body
            ),
        )

    @staticmethod
    def _message(
        request: CommandRequest, name: str, text: str, task_id: str | None
    ) -> tuple[RunMessage, dict[str, object]]:
        """The run's signal or update for a command, and its payload."""
        sender, comment = request.sender, request.comment_id
        if name == "retry":
            assert task_id is not None
            retry = RetryRequest(
                task_id=task_id,
                guidance=text,
                sender=sender,
                comment_id=comment,
                pr_number=request.number,
                repo_id=request.repo.repo_id,
            )
            return RunMessage.RETRY, retry.model_dump(mode="json")
        if name == "merge":
            assert task_id is not None
            merge = MergeRequest(
                task_id=task_id,
                sender=sender,
                pr_number=request.number,
                comment_id=comment,
                repo_id=request.repo.repo_id,
            )
            return RunMessage.MERGE, merge.model_dump(mode="json")
        if name == "stop":
            return RunMessage.STOP, StopRequest(
                sender=sender, comment_id=comment, number=request.number
            ).model_dump(mode="json")
        if name == "revert":
            return RunMessage.REVERT, RevertRequest(sender=sender, comment_id=comment).model_dump(mode="json")
        if name in ("go", "plan"):
            plan = PlanCommand(sender=sender, feedback=text if name == "plan" else "", comment_id=comment)
            return (RunMessage.GO if name == "go" else RunMessage.PLAN), plan.model_dump(mode="json")
        return RunMessage.REFRESH, {"sender": sender}

    async def _command(self, request: CommandRequest) -> str:
        command = request.command
        if not await self._is_writer(request, request.sender):
            await github(
                act.POST_REFUSAL,
                Refusal(
                    repo=request.repo,
                    issue_number=request.number,
                    sender=request.sender,
                    delivery_id=request.delivery_id,
                    what=f"use `/otto {command.word}`",
                ),
            )
            return "refused"
        if command.name in ("help", "unknown"):
            prefix = (
                f"`/otto {command.word}` isn't a command Otto knows.\n\n" if command.name == "unknown" else ""
            )
            await self._reply(request, prefix + HELP)
            return "help"

        run_id, latest = run_workflow_id(request.repo.repo_id, request.number), True  # the issue's latest run
        task_id: str | None = None
        on_a_task = command.name in ("retry", "merge")  # these name a task: they go on its PR
        if request.is_pull_request:
            pull = await github(
                act.RESOLVE_TASK_PULL, TaskPullQuery(repo=request.repo, pr_number=request.number)
            )
            if pull is not None:
                run_id, task_id, latest = pull.run_id, pull.task_id, False  # exactly the PR's own run
            elif on_a_task:
                await self._reply(
                    request, f"`/otto {command.name}` works on pull requests Otto opened for a task."
                )
                return "not an Otto PR"
        elif on_a_task:
            await self._reply(
                request, f"`/otto {command.name}` goes on the task's pull request, not on the issue."
            )
            return f"{command.name} on an issue"
        message, payload = self._message(request, command.name, command.text, task_id)
        signal = SignalInput(run_id=run_id, signal=message, payload=payload, latest=latest)
        outcome = await call(act.SIGNAL_RUN, signal)
        if not outcome.delivered:
            where = "pull request" if request.is_pull_request else "issue"
            await self._reply(
                request,
                f"There is no active Otto run for this {where}. "
                "Add the trigger label to the issue to start one.",
            )
            return "no run"
        if outcome.rejected is not None:  # the run's validator answered at once; nothing changed
            await self._reply(request, outcome.rejected)
            return "rejected"
        if command.name not in ("retry", "merge"):  # those are answered by the run itself (👀, then 👍 or 👎)
            await github(
                act.REACT_TO_COMMENT,
                CommentReaction(repo=request.repo, comment_id=request.comment_id, content="eyes"),
            )
        return f"delivered {message}"
