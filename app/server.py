"""The web process: ``POST /webhooks`` as a lean ASGI endpoint in front of FastAPI (``/metrics``,
``/healthz``). Decisions live in the handlers; this module only guards the door.

``/healthz`` and ``/readyz`` answer from the process's :class:`app.health.Probes`.

The webhook endpoint, in order: at most ``webhook_max_concurrent_reads`` requests read their bodies at once,
holding at most ``webhook_max_buffered_bytes`` between them (excess: 503 at once); a body over
``max_webhook_bytes`` (declared or counted) is 413, its rest read and dropped as it arrives so the sender
can read the answer (a body declared over twice the limit is refused before it is read, and the connection
closed); a body not complete within ``webhook_body_timeout_s`` is cut off with 408, its buffer dropped and
its connection closed; then the signature (401), the event and delivery headers (400), and the router
(202 ignored, 400 malformed, 202 accepted, 200 redelivery, 503 when Temporal is unreachable). A client
that goes away mid-body is one log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app import observability
from app.health import Probes
from app.intake import Router, Verifier, valid_delivery_id, valid_event
from app.routing import HandoffUnavailable, Outcome
from app.settings import Settings

log = logging.getLogger("otto.server")

WEBHOOK_PATH = "/webhooks"
_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


class _Gone(Exception):
    """The client disconnected before its body was complete."""

    def __init__(self, received: int) -> None:
        self.received = received


class _Refused(Exception):
    def __init__(self, outcome: Outcome, close: bool = False) -> None:
        self.outcome = outcome
        self.close = close  # the rest of the body is not read: the connection can't be reused


class _Headers:
    """The headers the endpoint reads (the first of each). Values are anyone's text until the signature
    is checked: ``event`` and ``delivery`` are set only when well-formed (short, plain ASCII)."""

    __slots__ = ("delivery", "delivery_raw", "event", "event_raw", "length", "signature")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self.signature = self.event_raw = self.delivery_raw = self.length = None
        for name, value in raw:
            if name == b"x-hub-signature-256":
                self.signature = self.signature if self.signature is not None else value
            elif name == b"x-github-event":
                self.event_raw = self.event_raw if self.event_raw is not None else value
            elif name == b"x-github-delivery":
                self.delivery_raw = self.delivery_raw if self.delivery_raw is not None else value
            elif name == b"content-length":
                self.length = value
        self.event = self.event_raw.decode() if self.event_raw and valid_event(self.event_raw) else None
        d = self.delivery_raw
        self.delivery = d.decode() if d and valid_delivery_id(d) else None

    @property
    def event_label(self) -> str | None:
        return self.event or ("other" if self.event_raw else None)

    def problem(self) -> str:
        which, raw = (
            ("X-GitHub-Event", self.event_raw)
            if self.event is None
            else ("X-GitHub-Delivery", self.delivery_raw)
        )
        return f"{'malformed' if raw else 'missing'} {which} header"


class ReadDeadlines:
    """The body-read timeout for every request with one timer: readers are noted with their deadline, and
    a watchdog task (running only while someone reads) cancels those past it, every ``timeout_s / 4``
    (at most 1 s) — cheaper than a timer per request on the hot path; a read is cut off between
    ``timeout_s`` and ``timeout_s`` + one tick."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick_s = min(1.0, timeout_s / 4)
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def enter(self) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        self._deadlines[task] = loop.time() + self.timeout_s
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch(loop), name="otto-webhook-read-deadlines")
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        self._deadlines.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()

    def expired(self, task: asyncio.Task[Any]) -> bool:
        return task in self._expired

    async def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._deadlines:
                await asyncio.sleep(self.tick_s)
                now = loop.time()
                for task, deadline in list(self._deadlines.items()):
                    if deadline <= now and task not in self._expired:
                        self._expired.add(task)
                        task.cancel()
        finally:
            self._watchdog = None


TOO_LARGE = Outcome(413, "payload too large")
TOO_SLOW = Outcome(408, "body not received in time")
BUSY = Outcome(503, "too many deliveries being received; retry later")


class WebhookEndpoint:
    """ASGI app: ``POST /webhooks`` handled here, everything else passed to ``fallback``."""

    def __init__(self, settings: Settings, router: Router, fallback: ASGIApp) -> None:
        self.router = router
        self.fallback = fallback
        self.verify = Verifier(settings.webhook_secret.get_secret_value())
        self.max_bytes = settings.max_webhook_bytes
        self.max_reads = settings.webhook_max_concurrent_reads
        self.max_buffered = settings.webhook_max_buffered_bytes
        self.known_events = router.events
        self.deadlines = ReadDeadlines(settings.webhook_body_timeout_s)
        self.reading = 0  # requests reading their body right now
        self.buffered = 0  # bytes held by those bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH:
            if scope["method"] == "POST":
                await self.webhook(scope, receive, send)
            else:
                await _respond(send, 405, b'{"status": "method not allowed"}', [(b"allow", b"POST")])
            return
        await self.fallback(scope, receive, send)

    async def webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        h = _Headers(scope["headers"])
        context = observability.set_delivery_context(h.delivery, h.event)
        try:
            await self._webhook(h, receive, send)
        finally:
            observability.reset_delivery_context(context)

    async def _webhook(self, h: _Headers, receive: Receive, send: Send) -> None:
        try:
            body = await self.read_body(receive, h.length)
        except _Refused as refused:
            return await self.answer(send, refused.outcome, h, verified=False, close=refused.close)
        except _Gone as gone:
            log.info("delivery %s: client disconnected after %d body bytes", h.delivery or "?", gone.received)
            observability.webhook_answered(h.event_label, "disconnected", False, self.known_events)
            return None
        if not self.verify(body, h.signature):
            log.warning("delivery %s: bad or missing X-Hub-Signature-256", h.delivery or "?")
            observability.signature_failed(h.signature)
            return await self.answer(send, Outcome(401, "bad signature"), h, verified=False)
        if h.event is None or h.delivery is None:
            return await self.answer(send, Outcome(400, h.problem()), h)
        try:
            outcome = await self.router.dispatch(h.event, h.delivery, body)
        except HandoffUnavailable as e:
            log.warning("delivery %s (%s): engine unavailable: %s", h.delivery, h.event, e)
            outcome = Outcome(503, "engine unavailable; redeliver later")
        if outcome.quiet:
            log.debug("delivery %s (%s): %s %s", h.delivery, h.event, outcome.status, outcome.message)
        else:
            log.info("delivery %s (%s): %s %s", h.delivery, h.event, outcome.status, outcome.message)
        return await self.answer(send, outcome, h)

    async def read_body(self, receive: Receive, declared: bytes | None) -> bytes:
        """The whole body, within the size, concurrency, memory and time limits (else :class:`_Refused`);
        :class:`_Gone` when the client disconnects first. A body over the size limit is read on and
        dropped as it arrives (up to twice the limit), so that the sender can read its 413."""
        if declared is not None and (not declared.isdigit() or len(declared) > 12):
            raise _Refused(Outcome(400, "malformed Content-Length"))
        if declared is not None and int(declared) > 2 * self.max_bytes:
            raise _Refused(TOO_LARGE, close=True)
        if self.reading >= self.max_reads:
            raise _Refused(BUSY)
        self.reading += 1
        task = self.deadlines.enter()
        chunks: list[bytes] = []
        size = 0  # bytes held in chunks (and counted in self.buffered)
        seen = 0  # bytes received
        too_large = declared is not None and int(declared) > self.max_bytes
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise _Gone(seen)
                chunk: bytes = message.get("body", b"")
                seen += len(chunk)
                if not too_large and seen > self.max_bytes:
                    too_large = True  # drop what is held; the rest is dropped as it arrives
                    self.buffered -= size
                    size = 0
                    chunks.clear()
                if too_large:
                    if seen > 2 * self.max_bytes:
                        raise _Refused(TOO_LARGE, close=True)
                elif chunk:
                    if self.buffered + len(chunk) > self.max_buffered:
                        raise _Refused(BUSY, close=True)
                    size += len(chunk)
                    self.buffered += len(chunk)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if not self.deadlines.expired(task):
                raise  # the server is shutting down
            raise _Refused(TOO_SLOW, close=True) from None
        finally:
            self.deadlines.leave(task)
            self.reading -= 1
            self.buffered -= size
        if too_large:
            raise _Refused(TOO_LARGE)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def answer(
        self, send: Send, outcome: Outcome, h: _Headers, verified: bool = True, close: bool = False
    ) -> None:
        observability.webhook_answered(h.event_label, outcome.status, verified, self.known_events)
        body = orjson.dumps({"status": outcome.message, "delivery": h.delivery})
        await _respond(send, outcome.status, body, [_CLOSE] if close else [])


async def _respond(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(
    settings: Settings,
    router: Router,
    extend: Callable[[FastAPI], None] | None = None,
    probes: Probes | None = None,
) -> WebhookEndpoint:
    """The webhook endpoint in front of FastAPI; ``extend`` adds routes (Mission Control) to the latter.
    With ``probes``, ``/healthz`` and ``/readyz`` answer from them (see ``app.health``)."""
    app = FastAPI(title="Otto", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = observability.metrics_exposition()
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> Response:
        ok, body = probes.live() if probes is not None else (True, {"status": "ok"})
        return _json(200 if ok else 503, body)

    if probes is not None:

        @app.get("/readyz")
        async def readyz() -> Response:
            assert probes is not None
            ok, body = await probes.ready()
            return _json(200 if ok else 503, body)

    if extend is not None:
        extend(app)
    return WebhookEndpoint(settings, router, app)


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
