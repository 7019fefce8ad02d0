"""Composition: the long-lived services a worker holds, its activities, the web app around the router."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI
from temporalio.client import Client
from temporalio.worker import Worker

from app.activities.attempt import TaskActivities
from app.activities.github import GitHubActivities
from app.activities.intake import IntakeActivities
from app.activities.model import ModelActivities
from app.activities.workspace import Workspace
from app.engine import TemporalHandoff, build_worker
from app.github_auth import GitHubApp
from app.intake import Router
from app.llm import LLM
from app.server import create_app
from app.settings import Settings
from handlers import HANDLERS


@dataclass
class Services:
    settings: Settings
    github: GitHubApp
    llm: LLM
    workspace: Workspace

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            github=GitHubApp(settings),
            llm=LLM(settings),
            workspace=Workspace(settings.mirrors_dir, settings.worktrees_dir),
        )


def activities(client: Client, services: Services) -> list[object]:
    s = services.settings
    gh = GitHubActivities(services.github, s.trigger_label)
    model = ModelActivities(services.llm, s.artifacts_dir)
    tasks = TaskActivities(s, services.github, services.llm, services.workspace, client)
    intake = IntakeActivities(client, s)
    return [
        gh.check_permission,
        gh.react_to_issue,
        gh.publish_status,
        gh.post_refusal,
        gh.load_issue,
        gh.react_to_comment,
        gh.reply,
        gh.resolve_task_pull,
        gh.merge_task_pull,
        gh.close_issue,
        gh.retarget_pull,
        gh.delete_branch,
        gh.review_guidance,
        gh.ci_report,
        model.classify,
        model.plan,
        model.pilot,
        model.replan,
        tasks.list_repo_files,
        tasks.execute_task,
        tasks.rebase_branch,
        intake.start_or_signal_run,
        intake.signal_run,
    ]


def web_app(settings: Settings, client: Client) -> FastAPI:
    router = Router(settings, TemporalHandoff(client, settings.task_queue), HANDLERS)
    return create_app(settings, router)


def worker(client: Client, services: Services) -> Worker:
    return build_worker(client, services.settings, activities(client, services))


@contextlib.asynccontextmanager
async def running_worker(client: Client, services: Services) -> AsyncIterator[Worker]:
    """Run a worker in the background of the current event loop until the block exits."""
    w = worker(client, services)
    task = asyncio.create_task(w.run())
    try:
        yield w
    finally:
        await w.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            await task
