"""REST: a repository's labels (list, create, get by name)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from app.dev.simulator import render
from app.dev.simulator.errors import not_found
from app.dev.simulator.http_util import authenticate, body_dict, json, paginate, sim_of

router = APIRouter(prefix="/api/v3")
REPO = "/repos/{owner}/{repo}"


@router.get(REPO + "/labels")
def list_labels(request: Request, owner: str, repo: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    with sim.lock:
        items = [render.label(lbl, r, sim.base_url) for lbl in sorted(r.labels.values(), key=lambda x: x.id)]
    page, headers = paginate(request, items)
    return json(page, headers=headers)


@router.post(REPO + "/labels")
def create_label(
    request: Request, owner: str, repo: str, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="write")
    created = sim.create_label(r, body_dict(body))
    return json(render.label(created, r, sim.base_url), status=201)


@router.get(REPO + "/labels/{name}")
def get_label(request: Request, owner: str, repo: str, name: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    found = sim.find_label(r, name)
    if found is None:
        raise not_found()
    return json(render.label(found, r, sim.base_url))
