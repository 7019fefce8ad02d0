"""Composition: the long-lived services a worker holds, its activities, the web app around the router."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio.activity import _Definition
from temporalio.client import Client
from temporalio.worker import Worker

from app.activities.github import GitHubActivities
from app.activities.installation_failures import InstallationFailures
from app.activities.intake import IntakeActivities
from app.activities.lifecycle import LifecycleActivities
from app.activities.model import ModelActivities
from app.activities.tasks import TaskActivities
from app.artifacts import ArtifactStore, store_from_settings
from app.contracts.activities import BY_NAME, Queue
from app.contracts.messages import OutagePolicy
from app.engine import TemporalHandoff, build_worker
from app.github_auth import GitHubApp
from app.health import Probes
from app.intake import Router
from app.llm import LLM
from app.sandbox import Sandbox, SandboxUnavailable, sandbox_from_settings
from app.server import WebhookEndpoint, create_app
from app.settings import Settings
from app.workspace import Workspace
from app.workspace.checkouts import SANDBOX_OBJECTS
from handlers import ROUTES


@dataclass
class Services:
    settings: Settings
    github: GitHubApp
    llm: LLM
    workspace: Workspace
    sandbox: Sandbox
    store: ArtifactStore

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.data_dir, 0o711)  # noqa: S103 - sandboxes get single directories bound by path
        sandbox = sandbox_from_settings(settings)
        with contextlib.suppress(SandboxUnavailable):  # logged; every task attempt will say why it can't run
            sandbox.ensure_available()
        return cls(
            settings=settings,
            github=GitHubApp(settings),
            llm=LLM(settings),
            workspace=Workspace(
                settings.mirrors_dir,
                settings.checkouts_dir,
                owner=sandbox.owner,
                pool_size=settings.workspace_pool_size,
                sandbox_objects=SANDBOX_OBJECTS if sandbox.enabled else None,
            ),
            sandbox=sandbox,
            store=store_from_settings(settings),
        )


def implementations(client: Client, services: Services) -> list[Callable[..., Any]]:
    """Every activity implementation (each registered under its spec's name, see app.contracts.activities)."""
    s = services.settings
    gh = GitHubActivities(
        services.github, s.trigger_label, services.store, s.public_url, services.sandbox.warning
    )
    model = ModelActivities(services.llm, services.store)
    tasks = TaskActivities(
        s, services.github, services.llm, services.workspace, services.sandbox, client, services.store
    )
    intake = IntakeActivities(client, s)
    lifecycle = LifecycleActivities(client, services.github)
    groups: list[object] = [gh, model, tasks, intake, lifecycle]
    return [
        getattr(group, name)
        for group in groups
        for name in dir(group)
        if not name.startswith("_") and _Definition.from_callable(getattr(group, name)) is not None
    ]


def activities(client: Client, services: Services) -> dict[str, list[object]]:
    """Every activity, by the task queue its spec says it runs on (model-bound and CPU-bound work apart)."""
    s = services.settings
    queue_names = {Queue.MAIN: s.task_queue, Queue.MODEL: s.model_task_queue, Queue.CPU: s.cpu_task_queue}
    by_queue: dict[str, list[object]] = {name: [] for name in queue_names.values()}
    for fn in implementations(client, services):
        name = activity_name(fn)
        spec = BY_NAME.get(name)
        if spec is None:
            raise RuntimeError(f"activity {name!r} has no spec in app.contracts.activities")
        by_queue[queue_names[spec.queue]].append(fn)
    return by_queue


def activity_name(fn: Callable[..., Any]) -> str:
    defn = _Definition.from_callable(fn)
    if defn is None or defn.name is None:
        raise RuntimeError(f"{fn!r} is not an activity")
    return defn.name


def web_app(
    settings: Settings, client: Client, store: ArtifactStore | None = None, probes: Probes | None = None
) -> WebhookEndpoint:
    """Webhooks, health and readiness (``probes``: the process's, else its own), metrics, and Mission
    Control (reading runs from the artifact store)."""
    from app import web

    router = Router(settings, TemporalHandoff(client, settings.task_queue, OutagePolicy.of(settings)), ROUTES)
    return create_app(
        settings,
        router,
        extend=lambda app: web.mount(app, settings, client, store or store_from_settings(settings)),
        probes=probes or Probes(settings, client),
    )


def workers(client: Client, services: Services, queues: Sequence[str] | None = None) -> list[Worker]:
    """Workers for ``queues`` (default: all three), each polling its own task queue. The main queue gets
    two: its activities, and the workflows apart, so that on shutdown the workflows keep answering (the
    activities finishing in the grace period query their run) until the activities are done."""
    s = services.settings
    by_queue = activities(client, services)
    wanted = list(dict.fromkeys(queues or by_queue))
    unknown = [q for q in wanted if q not in by_queue]
    if unknown:
        raise ValueError(f"unknown task queue(s) {', '.join(unknown)}; Otto's are {', '.join(by_queue)}")
    failures = [InstallationFailures(services.github)]
    out = [
        build_worker(client, s, q, by_queue[q], with_workflows=False, interceptors=failures) for q in wanted
    ]
    if s.task_queue in wanted:
        out.append(build_worker(client, s, s.task_queue, [], with_workflows=True))
    return out


@contextlib.asynccontextmanager
async def running_worker(client: Client, services: Services) -> AsyncIterator[list[Worker]]:
    """Run workers for every queue in the background of the current event loop until the block exits."""
    ws = workers(client, services)
    tasks = [asyncio.create_task(w.run()) for w in ws]
    try:
        yield ws
    finally:
        await asyncio.gather(*(w.shutdown() for w in ws))
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
