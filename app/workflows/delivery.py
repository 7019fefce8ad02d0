"""DeliveryWorkflow: one per webhook delivery id (the durable de-duplication record).

It authorizes the sender against GitHub (write, maintain or admin; fail closed) and then starts or signals
the issue's RunWorkflow, or posts a short refusal.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.activities.github import GitHubActivities, PermissionQuery
    from app.activities.intake import IntakeActivities
    from app.domain.run import WRITE_PERMISSIONS, Refusal, StartRun
    from app.workflows.options import GITHUB


@workflow.defn
class DeliveryWorkflow:
    @workflow.run
    async def run(self, request: StartRun) -> str:
        permission = await workflow.execute_activity_method(
            GitHubActivities.check_permission,
            PermissionQuery(repo=request.repo, login=request.trigger.sender),
            **GITHUB,
        )
        if permission not in WRITE_PERMISSIONS:
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
