"""The App uninstalled, suspended, or repositories taken out of its installation: the runs there stop.

Called by the DeliveryWorkflow for an :class:`~app.contracts.messages.InstallationChange`. GitHub is asked
first (a late or out-of-order delivery must not stop the runs of an installation that is fine again); then
the matching runs get the ``stop`` update with the reason their state shows. They can't post any more (GitHub
refuses the App there), so they end without writing to GitHub; Mission Control still shows why.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from app.contracts import activities as act
    from app.contracts.failures import INSTALLATION_UNAVAILABLE
    from app.contracts.io import InstallationQuery, RepositoryQuery, StopRuns
    from app.contracts.messages import InstallationChange
    from app.domain.lifecycle import stop_reason
    from app.workflows.calls import call, github


def installation_unavailable(e: BaseException) -> bool:
    """Whether ``e`` is an activity's failure because GitHub won't serve the installation at all."""
    cause = e.cause if isinstance(e, ActivityError) else e
    return isinstance(cause, ApplicationError) and cause.type in INSTALLATION_UNAVAILABLE


async def installation_changed(request: InstallationChange) -> str:
    where = f"installation {request.installation_id} ({request.account or '?'})"
    repo_ids: list[int] | None = None
    if request.action == "removed":
        asked = [r.repo_id for r in request.repositories]
        try:
            access = await github(
                act.REPOSITORY_ACCESS,
                RepositoryQuery(
                    installation_id=request.installation_id, account=request.account, repo_ids=asked
                ),
            )
            still = set(access.accessible)
        except ActivityError as e:
            if not installation_unavailable(e):
                raise
            still = set()  # the whole installation is out of reach: these repositories certainly are
        repo_ids = [r for r in asked if r not in still]
        if not repo_ids:
            return f"{where}: the removed repositories are back; nothing stopped"
        names = [r.full_name for r in request.repositories if r.repo_id in repo_ids]
        one = names[0] if len(names) == 1 else None
        reason = stop_reason("removed", request.account, request.sender, one)
    else:
        status = await github(
            act.INSTALLATION_STATUS,
            InstallationQuery(installation_id=request.installation_id, account=request.account),
        )
        if status.state == "active":
            return f"{where} is active again; nothing stopped"
        reason = stop_reason(request.action, request.account, request.sender)
    stopped = await call(
        act.STOP_RUNS,
        StopRuns(
            installation_id=request.installation_id,
            repo_ids=repo_ids,
            sender=request.sender,
            reason=reason,
            post=False,
        ),
    )
    return f"{where} {request.action}: stopped {len(stopped.run_ids)} run(s)"
