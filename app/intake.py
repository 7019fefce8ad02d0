"""Webhook intake: signature verification, size limit, parsing into githubkit's typed models, routing.

Nothing here is slow: a handler decides, and anything that needs GitHub or a model is handed to Temporal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from app.domain.run import DeliveryRequest
from app.events import ACTED_ON
from app.settings import Settings

log = logging.getLogger("otto.intake")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256`` check, constant time. The legacy SHA-1 header is never accepted."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str


IGNORED = Outcome(202, "ignored")


class Handoff(Protocol):
    """Durable hand-off to the engine. Returns False when this delivery was already accepted."""

    async def submit(self, delivery_id: str, request: DeliveryRequest) -> bool: ...


@dataclass(frozen=True)
class HandlerContext:
    settings: Settings
    handoff: Handoff
    delivery_id: str
    event: str


Handler = Callable[[HandlerContext, Any], Awaitable[Outcome]]


class Router:
    def __init__(self, settings: Settings, handoff: Handoff, handlers: dict[str, Handler]) -> None:
        self.settings = settings
        self.handoff = handoff
        self.handlers = handlers

    async def dispatch(self, event: str, delivery_id: str, body: bytes) -> Outcome:
        handler = self.handlers.get(event)
        if handler is None:
            return Outcome(202, f"event {event!r} ignored")
        try:
            data = json.loads(body)
        except ValueError:
            return Outcome(400, "body is not JSON")
        if not isinstance(data, dict):
            return Outcome(400, "body is not a JSON object")
        action = data.get("action")
        model = ACTED_ON.get((event, action if isinstance(action, str) else ""))
        if model is None:
            return Outcome(202, f"{event}.{action} ignored")
        try:
            parsed = model.model_validate(data)
        except ValidationError as e:
            fields = ", ".join(sorted({".".join(str(p) for p in err["loc"]) for err in e.errors()})[:5])
            log.info("delivery %s: %s.%s payload rejected (%s)", delivery_id, event, action, fields)
            return Outcome(400, f"malformed {event}.{action} payload: {fields}")
        ctx = HandlerContext(self.settings, self.handoff, delivery_id, event)
        return await handler(ctx, parsed)
