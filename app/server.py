"""The web process: ``POST /webhooks`` plus health endpoints. Routes are thin; decisions live in handlers."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from app import observability
from app.intake import Outcome, Router, verify_signature
from app.settings import Settings

log = logging.getLogger("otto.server")


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(outcome: Outcome, delivery: str | None) -> JSONResponse:
    return JSONResponse({"status": outcome.message, "delivery": delivery}, status_code=outcome.status)


def get_router(request: Request) -> Router:
    router: Router = request.app.state.router
    return router


def create_app(settings: Settings, router: Router) -> FastAPI:
    app = FastAPI(title="Otto", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.router = router
    app.add_middleware(observability.LogContextMiddleware)

    @app.post("/webhooks")
    async def webhooks(
        request: Request,
        router: Annotated[Router, Depends(get_router)],
        x_github_event: Annotated[str | None, Header()] = None,
        x_github_delivery: Annotated[str | None, Header()] = None,
        x_hub_signature_256: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        def answer(outcome: Outcome, verified: bool = True) -> JSONResponse:
            observability.webhook_answered(x_github_event, outcome.status, verified, router.handlers)
            return _answer(outcome, x_github_delivery)

        try:
            body = await read_body(request, settings.max_webhook_bytes)
        except BodyTooLarge:
            return answer(Outcome(413, "payload too large"), verified=False)
        if not verify_signature(settings.webhook_secret.get_secret_value(), body, x_hub_signature_256):
            log.warning("delivery %s: bad or missing X-Hub-Signature-256", x_github_delivery)
            observability.signature_failed(x_hub_signature_256)
            return answer(Outcome(401, "bad signature"), verified=False)
        if not x_github_event or not x_github_delivery:
            return answer(Outcome(400, "missing X-GitHub-Event or X-GitHub-Delivery"))
        outcome = await router.dispatch(x_github_event, x_github_delivery, body)
        log.info(
            "delivery %s (%s): %s %s", x_github_delivery, x_github_event, outcome.status, outcome.message
        )
        return answer(outcome)

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = observability.metrics_exposition()
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
