"""Mission Control: Otto's web UI under ``/runs`` (see ``pages``), mounted on the web process's app."""

from __future__ import annotations

from fastapi import FastAPI
from temporalio.client import Client

from app.artifacts import ArtifactStore
from app.settings import Settings


def mount(app: FastAPI, settings: Settings, client: Client | None, store: ArtifactStore) -> None:
    from app.web.pages import ServerTiming, mission_control

    app.include_router(mission_control(settings, client, store))
    app.add_middleware(ServerTiming)
