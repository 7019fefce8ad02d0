"""Small helpers shared by the simulator's routes: auth per request, JSON answers, GitHub pagination."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from app.dev.simulator.auth import Actor
from app.dev.simulator.errors import ApiError

if TYPE_CHECKING:
    from app.dev.simulator.simulator import Simulator

TOKENS = ("installation", "user")
ACTOR_SCOPE_KEY = "sim.actor"


def sim_of(request: Request) -> Simulator:
    sim: Simulator = request.app.state.sim
    return sim


def authenticate(request: Request, allow: tuple[str, ...] = TOKENS) -> Actor:
    actor = sim_of(request).authenticate(request.headers.get("authorization"), allow)
    request.scope[ACTOR_SCOPE_KEY] = actor
    return actor


def acting_user(actor: Actor) -> Any:
    assert actor.user is not None
    return actor.user


def via_app(actor: Actor) -> int | None:
    return actor.app.id if actor.kind == "installation" and actor.app is not None else None


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def int_param(request: Request, name: str, default: int, lo: int = 1, hi: int = 10**9) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, f"Invalid value for {name}") from exc
    return max(lo, min(hi, value))


def paginate(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """Slice ``items`` by ``per_page`` (default 30, max 100) and ``page``; GitHub-style ``Link`` header."""
    per_page = int_param(request, "per_page", 30, 1, 100)
    page = int_param(request, "page", 1)
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]

    def link(target: int, rel: str) -> str:
        url = request.url.include_query_params(page=target, per_page=per_page)
        return f'<{url}>; rel="{rel}"'

    links = []
    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    return chunk, ({"Link": ", ".join(links)} if links else {})


def body_dict(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "Problems parsing JSON")
    return body
