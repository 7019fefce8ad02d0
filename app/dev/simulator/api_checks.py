"""REST: check runs (created and updated by Apps only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from app.dev.simulator.errors import ApiError
from app.dev.simulator.http_util import authenticate, body_dict, int_param, json, paginate, sim_of

router = APIRouter(prefix="/api/v3")
REPO = "/repos/{owner}/{repo}"


@router.post(REPO + "/check-runs")
def create_check_run(
    request: Request, owner: str, repo: str, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    if actor.kind != "installation" or actor.app is None:
        raise ApiError(403, "You must authenticate via a GitHub App.")
    run = sim.create_check_run(r, actor.app, body_dict(body))
    return json(sim.render_check_run(r, run), status=201)


@router.get(REPO + "/check-runs/{run_id}")
def get_check_run(request: Request, owner: str, repo: str, run_id: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    return json(sim.render_check_run(r, sim.get_check_run(r, run_id)))


@router.patch(REPO + "/check-runs/{run_id}")
def update_check_run(
    request: Request, owner: str, repo: str, run_id: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    if actor.kind != "installation" or actor.app is None:
        raise ApiError(403, "You must authenticate via a GitHub App.")
    run = sim.update_check_run(r, actor.app, run_id, body_dict(body))
    return json(sim.render_check_run(r, run))


@router.get(REPO + "/commits/{ref:path}/check-runs")
def list_check_runs(request: Request, owner: str, repo: str, ref: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    q = request.query_params
    app_id = int_param(request, "app_id", 0, 0) or None
    runs = sim.list_check_runs(r, ref, q.get("check_name"), q.get("status"), app_id)
    page, headers = paginate(request, runs)
    return json(
        {"total_count": len(runs), "check_runs": [sim.render_check_run(r, run) for run in page]},
        headers=headers,
    )
