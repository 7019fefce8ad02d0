"""``create_app(sim)``: the simulator's FastAPI app (REST under /api/v3, GraphQL, git smart HTTP)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.dev.simulator import (
    api_app,
    api_checks,
    api_commits,
    api_issues,
    api_labels,
    api_meta,
    api_pulls,
    api_repos,
    git_http,
    graphql,
    oauth,
    web_apps,
    web_pages,
)
from app.dev.simulator.auth import Actor
from app.dev.simulator.core import rate_resource
from app.dev.simulator.errors import ApiError
from app.dev.simulator.faults import Fault
from app.dev.simulator.http_util import ACTOR_SCOPE_KEY
from app.dev.simulator.simulator import Simulator
from app.dev.simulator.state import CallRecord

API_PREFIX = "/api/v3"


class CallLog:
    """ASGI middleware recording (method, path, status, actor) of every answered request in the call log
    of the app's current simulator (``app.state.sim``); it also serves injected faults (``inject_faults``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sim: Simulator = scope["app"].state.sim
        path: str = scope["path"]
        api = path.startswith(API_PREFIX) or path == "/api/graphql"
        kind = "web"
        if path.startswith(API_PREFIX):
            path, kind = path[len(API_PREFIX) :] or "/", "rest"
        elif path == "/api/graphql":
            path, kind = "/graphql", "graphql"
        elif ".git/" in path:
            kind = "git"
        query = scope.get("query_string", b"").decode("latin-1")
        fault = sim.take_fault(scope["method"], path) if api else None
        if fault is None and (api or kind == "git"):
            fault = sim.outage_fault()
        if fault is not None:  # logged before answering: the client finds its call in the log at once
            actor = _actor_of(sim, scope)
            app_id = actor.app.id if actor is not None and actor.app is not None else None
            label = actor.label if actor is not None else "anonymous"
            sim.record_call(
                CallRecord(
                    scope["method"], path, fault.status, label, app_id, query, injected=True, kind=kind
                )
            )
            await _answer_fault(fault, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if api:  # GitHub sends the caller's rate-limit state with every API answer
                    resource = rate_resource(CallRecord(scope["method"], path, status, "", None, kind=kind))
                    actor = scope.get(ACTOR_SCOPE_KEY)
                    label = actor.label if isinstance(actor, Actor) else "anonymous"
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            *sim.rate_limits.headers(label, resource),
                        ],
                    }
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            actor = scope.get(ACTOR_SCOPE_KEY)
            label = actor.label if isinstance(actor, Actor) else "anonymous"
            app_id = actor.app.id if isinstance(actor, Actor) and actor.app is not None else None
            sim.record_call(CallRecord(scope["method"], path, status, label, app_id, query, kind=kind))


async def _answer_fault(fault: Fault, receive: Receive, send: Send) -> None:
    more = True
    while more:  # drain the request body before answering, like a real front end
        message = await receive()
        more = message["type"] == "http.request" and bool(message.get("more_body"))
    body, headers = fault.render()
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _actor_of(sim: Simulator, scope: Scope) -> Actor | None:
    """Who sent a request answered by a fault (best effort: None when its credentials don't resolve)."""
    raw = dict(scope.get("headers") or []).get(b"authorization")
    if raw is None:
        return None
    try:
        return sim.authenticate(raw.decode("latin-1"), ("app", "installation", "user"))
    except ApiError:
        return None


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(ApiError(status, message).body(), status_code=status)


def create_app(sim: Simulator) -> FastAPI:
    """The simulator's ASGI app; requests are served from ``app.state.sim`` (tests may swap it)."""
    app = FastAPI(title="GitHub simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim
    # order matters: literal paths before parameterised ones; oauth before git smart HTTP's catch-all
    # (/{owner}/{repo}/... would take /login/oauth/...), which comes last
    routers = (api_app, api_meta, api_repos, api_labels, api_issues, api_pulls, api_checks, api_commits)
    for module in (*routers, web_apps, web_pages, graphql, oauth, git_http):  # git_http: a catch-all, last
        app.include_router(module.router)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            return error_response(404, "Not Found")
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, _exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "Problems parsing JSON")

    app.add_middleware(CallLog)
    return app
