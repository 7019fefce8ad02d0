"""Webhook intake: signature verification, header checks, parsing into the handlers' models, routing.

Nothing here is slow: a handler decides, and anything that needs GitHub or a model is handed to Temporal.
The cheap decisions come first: a delivery whose (event, action) no handler registered is answered 202
without parsing its body (the action is read from the body's first bytes when GitHub's usual
``{"action":"…"`` prefix is there, else from the parsed body).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

import orjson
from pydantic import ValidationError

from app.routing import HandlerContext, Handoff, Outcome, Routes
from app.settings import Settings

log = logging.getLogger("otto.intake")

# GitHub's delivery ids are GUIDs; anything short and plain is accepted (tests, GHES), nothing else:
# the id names a Temporal workflow and lands in logs and metrics.
MAX_DELIVERY_ID = 64
_DELIVERY_ID = re.compile(rb"[0-9A-Za-z][0-9A-Za-z._:-]{0,%d}\Z" % (MAX_DELIVERY_ID - 1))
_EVENT = re.compile(rb"[0-9A-Za-z_.-]{1,64}\Z")
_ACTION_PREFIX = b'{"action":"'
_MAX_ACTION = 64


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | bytes | None) -> bool:
    """``X-Hub-Signature-256`` check, constant time. The legacy SHA-1 header is never accepted."""
    return Verifier(secret)(body, header.encode("utf-8", "replace") if isinstance(header, str) else header)


class Verifier:
    """HMAC-SHA256 with the key set up once. Compares bytes, so any header value (non-ASCII included)
    is just a wrong signature. An empty secret verifies nothing."""

    def __init__(self, secret: str) -> None:
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256) if secret else None

    def __call__(self, body: bytes, header: bytes | None) -> bool:
        if self._mac is None or not header or not header.startswith(b"sha256="):
            return False
        mac = self._mac.copy()
        mac.update(body)
        return hmac.compare_digest(mac.hexdigest().encode(), header[7:])


def valid_delivery_id(value: bytes) -> bool:
    return _DELIVERY_ID.match(value) is not None


def valid_event(value: bytes) -> bool:
    return _EVENT.match(value) is not None


def peek_action(body: bytes) -> str | None:
    """The top-level ``action`` when the body starts with it as GitHub sends it (``{"action":"labeled",``),
    else None (then the body is parsed). Used only to ignore deliveries early, never to act on one."""
    if not body.startswith(_ACTION_PREFIX):
        return None
    start = len(_ACTION_PREFIX)
    end = body.find(b'"', start, start + _MAX_ACTION + 1)
    if end < 0:
        return None
    value = body[start:end]
    if b"\\" in value or not value.isascii():
        return None
    return value.decode("ascii")


class Router:
    def __init__(self, settings: Settings, handoff: Handoff, routes: Routes) -> None:
        self.settings = settings
        self.handoff = handoff
        self.routes = routes

    @property
    def events(self) -> frozenset[str]:
        return self.routes.events

    async def dispatch(self, event: str, delivery_id: str, body: bytes) -> Outcome:
        routes = self.routes
        if not routes.handles_event(event):
            return Outcome(202, f"event {event!r} ignored", quiet=True)
        peeked = peek_action(body)
        if peeked is not None and routes.ignores(event, peeked):
            return Outcome(202, f"{event}.{peeked} ignored", quiet=True)
        try:
            data = orjson.loads(body)  # nesting is bounded (1024 levels): deep input is a 400, not a crash
        except orjson.JSONDecodeError:
            return Outcome(400, "body is not JSON")
        if not isinstance(data, dict):
            return Outcome(400, "body is not a JSON object")
        action = data.get("action")
        action = action if isinstance(action, str) else ""
        route = routes.lookup(event, action)
        if route is None:
            return Outcome(202, f"{event}.{action[:_MAX_ACTION]} ignored", quiet=True)
        try:
            parsed = route.model.model_validate(data)
        except ValidationError as e:
            fields = ", ".join(sorted({".".join(str(p) for p in err["loc"]) for err in e.errors()})[:5])
            log.info("delivery %s: %s payload rejected (%s)", delivery_id, route.name, fields)
            return Outcome(400, f"malformed {event}.{action[:_MAX_ACTION]} payload: {fields}"[:500])
        ctx = HandlerContext(self.settings, self.handoff, delivery_id, event)
        return await route.handler(ctx, parsed)
