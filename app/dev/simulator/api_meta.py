"""REST: ``GET /rate_limit`` (the caller's own limits; it does not count against them)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRouter

from app.dev.simulator.http_util import authenticate, json, sim_of
from app.dev.simulator.ratelimit import LIMITS

router = APIRouter(prefix="/api/v3")


@router.get("/rate_limit")
def rate_limit(request: Request) -> JSONResponse:
    sim = sim_of(request)
    label = "anonymous"
    if request.headers.get("authorization"):
        label = authenticate(request, ("app", "installation", "user")).label
    resources = {name: sim.rate_limits.status(label, name) for name in LIMITS}
    return json({"resources": resources, "rate": resources["core"]})
