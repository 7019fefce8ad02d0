"""The installation's lifecycle as activities: what GitHub says of an installation and its repositories now,
and stopping the runs of an installation the App was removed from (or of repositories taken out of it).

Deliveries can arrive late or out of order (an ``installation.suspend`` redelivered after the
``unsuspend``), so nothing is stopped on a webhook's word alone: ``installation_status`` (the App's JWT) and
``repository_access`` (the installation's token) ask GitHub first. ``stop_runs`` finds the active runs in
Temporal's visibility store (``WorkflowType='RunWorkflow' AND ExecutionStatus='Running'``), asks each for
its state (a run's repository and installation) and sends the matching ones the ``stop`` update with the
reason they show. A rare event, so visiting every active run is fine.
"""

from __future__ import annotations

import logging
from typing import Any

from githubkit.exception import RequestFailed
from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from app.contracts.io import (
    InstallationQuery,
    InstallationStatus,
    RepositoryAccess,
    RepositoryQuery,
    StoppedRuns,
    StopRuns,
)
from app.contracts.messages import RUN_WORKFLOW, RunMessage, StopRequest
from app.domain.run import RunState
from app.github_auth import GitHubApp
from app.github_retry import durable_rate_limits

log = logging.getLogger("otto.installation")

ACTIVE_RUNS = f"WorkflowType='{RUN_WORKFLOW}' AND ExecutionStatus='Running'"


class LifecycleActivities:
    def __init__(self, client: Client, app: GitHubApp) -> None:
        self.client = client
        self.app = app

    @activity.defn
    @durable_rate_limits
    async def installation_status(self, q: InstallationQuery) -> InstallationStatus:
        """``GET /app/installations/{id}`` with the App's JWT: gone (404), suspended, or active."""
        try:
            resp = await self.app.app_client.rest.apps.async_get_installation(q.installation_id)
        except RequestFailed as e:
            if e.response.status_code == 404:
                return InstallationStatus(state="gone")
            raise
        return InstallationStatus(state="suspended" if resp.parsed_data.suspended_at else "active")

    @activity.defn
    @durable_rate_limits
    async def repository_access(self, q: RepositoryQuery) -> RepositoryAccess:
        """Which of ``q.repo_ids`` the installation can still reach (``GET /installation/repositories``)."""
        gh = await self.app.installation_client(q.installation_id)
        paginator: Any = gh.rest.paginate(
            gh.rest.apps.async_list_repos_accessible_to_installation,
            map_func=lambda r: r.parsed_data.repositories,
            per_page=100,
        )
        reachable: set[int] = set()
        async for repo in paginator:
            reachable.add(int(repo.id))
        return RepositoryAccess(accessible=[r for r in q.repo_ids if r in reachable])

    @activity.defn
    async def stop_runs(self, inp: StopRuns) -> StoppedRuns:
        """Send ``stop`` to every active run of the installation (of ``inp.repo_ids`` only, when given)."""
        stopped: list[str] = []
        async for execution in self.client.list_workflows(ACTIVE_RUNS):
            activity.heartbeat(len(stopped))
            handle = self.client.get_workflow_handle(execution.id)
            try:
                state = await handle.query(RunMessage.STATUS, result_type=RunState)
            except (RPCError, WorkflowQueryFailedError):  # ended meanwhile
                continue
            repo = state.repo
            if repo.installation_id != inp.installation_id or state.phase.final:
                continue
            if inp.repo_ids is not None and repo.repo_id not in inp.repo_ids:
                continue
            request = StopRequest(sender=inp.sender, reason=inp.reason, post=inp.post)
            try:
                await handle.execute_update(RunMessage.STOP, request, result_type=str)
            except (RPCError, WorkflowUpdateFailedError) as e:
                log.info("run %s could not be stopped (%s): it has probably ended", execution.id, e)
                continue
            log.info("run %s stopped: %s", execution.id, inp.reason)
            stopped.append(execution.id)
        return StoppedRuns(run_ids=stopped)
