"""DeliveryWorkflow: one per webhook delivery id (the durable de-duplication record).

It authorizes the sender against GitHub (write, maintain or admin; fail closed), then starts or signals
the issue's RunWorkflow, or answers the comment (help, refusal, "no run here").
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.activities.github import (
        CommentReaction,
        GitHubActivities,
        PermissionQuery,
        ReplyInput,
        TaskPullQuery,
    )
    from app.activities.intake import IntakeActivities, SignalInput
    from app.domain.commands import HELP
    from app.domain.run import (
        WRITE_PERMISSIONS,
        CommandRequest,
        Refusal,
        RetryRequest,
        StartRun,
        StopRequest,
    )
    from app.workflows.options import GITHUB


@workflow.defn
class DeliveryWorkflow:
    @workflow.run
    async def run(self, request: StartRun | CommandRequest) -> str:
        if isinstance(request, StartRun):
            return await self._start(request)
        return await self._command(request)

    async def _is_writer(self, request: StartRun | CommandRequest, login: str) -> bool:
        permission = await workflow.execute_activity_method(
            GitHubActivities.check_permission, PermissionQuery(repo=request.repo, login=login), **GITHUB
        )
        return permission in WRITE_PERMISSIONS

    async def _start(self, request: StartRun) -> str:
        if not await self._is_writer(request, request.trigger.sender):
            await workflow.execute_activity_method(
                GitHubActivities.post_refusal,
                Refusal(
                    repo=request.repo,
                    issue_number=request.issue_number,
                    sender=request.trigger.sender,
                    delivery_id=request.trigger.delivery_id,
                    what="start an Otto run",
                ),
                **GITHUB,
            )
            return "refused"
        return await workflow.execute_activity_method(IntakeActivities.start_or_signal_run, request, **GITHUB)

    async def _reply(self, request: CommandRequest, body: str) -> None:
        await workflow.execute_activity_method(
            GitHubActivities.reply,
            ReplyInput(
                repo=request.repo, number=request.number, key=f"delivery={request.delivery_id}", body=body
            ),
            **GITHUB,
        )

    async def _command(self, request: CommandRequest) -> str:
        command = request.command
        if not await self._is_writer(request, request.sender):
            await workflow.execute_activity_method(
                GitHubActivities.post_refusal,
                Refusal(
                    repo=request.repo,
                    issue_number=request.number,
                    sender=request.sender,
                    delivery_id=request.delivery_id,
                    what=f"use `/otto {command.word}`",
                ),
                **GITHUB,
            )
            return "refused"
        if command.name in ("help", "unknown"):
            prefix = (
                f"`/otto {command.word}` isn't a command Otto knows.\n\n" if command.name == "unknown" else ""
            )
            await self._reply(request, prefix + HELP)
            return "help"

        run_id = f"otto/{request.repo.repo_id}/{request.number}"
        task_id: str | None = None
        if request.is_pull_request:
            pull = await workflow.execute_activity_method(
                GitHubActivities.resolve_task_pull,
                TaskPullQuery(repo=request.repo, pr_number=request.number),
                **GITHUB,
            )
            if pull is not None:
                run_id, task_id = pull.run_id, pull.task_id
            elif command.name == "retry":
                await self._reply(request, "`/otto retry` works on pull requests Otto opened for a task.")
                return "not an Otto PR"
        elif command.name == "retry":
            await self._reply(request, "`/otto retry` goes on the task's pull request, not on the issue.")
            return "retry on an issue"

        if command.name == "retry":
            assert task_id is not None
            payload = RetryRequest(
                task_id=task_id,
                guidance=command.text,
                sender=request.sender,
                comment_id=request.comment_id,
                pr_number=request.number,
            ).model_dump(mode="json")
        elif command.name == "stop":
            payload = StopRequest(
                sender=request.sender, comment_id=request.comment_id, number=request.number
            ).model_dump(mode="json")
        else:
            payload = {"sender": request.sender}
        signal = {"retry": "retry", "stop": "stop", "status": "refresh"}[command.name]
        delivered = await workflow.execute_activity_method(
            IntakeActivities.signal_run, SignalInput(run_id=run_id, signal=signal, payload=payload), **GITHUB
        )
        if not delivered:
            where = "pull request" if request.is_pull_request else "issue"
            await self._reply(
                request,
                f"There is no active Otto run for this {where}. "
                "Add the trigger label to the issue to start one.",
            )
            return "no run"
        if command.name != "retry":  # a retry is acknowledged by the run itself (👀, then 👍 or 👎)
            await workflow.execute_activity_method(
                GitHubActivities.react_to_comment,
                CommentReaction(repo=request.repo, comment_id=request.comment_id, content="eyes"),
                **GITHUB,
            )
        return f"signalled {signal}"
