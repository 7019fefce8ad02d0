"""``create_app(sim)``: the simulator's FastAPI app (REST under /api/v3, GraphQL, git smart HTTP)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.simulator import api_app, api_checks, api_issues, api_pulls, api_repos, git_http, graphql
from app.simulator.auth import Actor
from app.simulator.errors import ApiError
from app.simulator.http_util import ACTOR_SCOPE_KEY
from app.simulator.simulator import Simulator
from app.simulator.state import CallRecord

API_PREFIX = "/api/v3"


class CallLog:
    """ASGI middleware recording (method, path, status, actor) of every answered request in the call log
    of the app's current simulator (``app.state.sim``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            path: str = scope["path"]
            if path.startswith(API_PREFIX):
                path = path[len(API_PREFIX) :] or "/"
            elif path == "/api/graphql":
                path = "/graphql"
            actor = scope.get(ACTOR_SCOPE_KEY)
            label = actor.label if isinstance(actor, Actor) else "anonymous"
            app_id = actor.app.id if isinstance(actor, Actor) and actor.app is not None else None
            query = scope.get("query_string", b"").decode("latin-1")
            sim: Simulator = scope["app"].state.sim
            sim.record_call(CallRecord(scope["method"], path, status, label, app_id, query))


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(ApiError(status, message).body(), status_code=status)


def create_app(sim: Simulator) -> FastAPI:
    """The simulator's ASGI app; requests are served from ``app.state.sim`` (tests may swap it)."""
    app = FastAPI(title="GitHub simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim
    for module in (api_app, api_repos, api_issues, api_pulls, api_checks, graphql, git_http):
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
