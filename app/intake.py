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

from githubkit import webhooks
from pydantic import ValidationError

from app.domain.run import StartRun
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

    async def start_run(self, delivery_id: str, request: StartRun) -> bool: ...


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
            json.loads(body)
        except ValueError:
            return Outcome(400, "body is not JSON")
        try:
            parsed = webhooks.parse(event, body)
        except (ValidationError, ValueError, KeyError) as e:
            log.info("delivery %s: %s payload rejected: %s", delivery_id, event, type(e).__name__)
            return Outcome(400, f"malformed {event} payload")
        ctx = HandlerContext(self.settings, self.handoff, delivery_id, event)
        return await handler(ctx, parsed)
