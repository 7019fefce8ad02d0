"""Checks every REST answer a client got from the simulator against GitHub's REST description: an ASGI
wrapper around the simulator's app records (method, path, status, body) of each ``/api/v3`` answer; then
each is matched to its OpenAPI operation (the most literal template wins) and its status and JSON body are
validated. Used by tests that drive the simulator with a real client (PyGithub)."""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.test_simulator_fidelity import openapi

API_PREFIX = "/api/v3"
MULTI_SEGMENT = {"path", "ref", "name"}  # parameters whose concrete values may hold slashes


@dataclass
class Exchange:
    method: str
    path: str  # without /api/v3
    status: int
    body: bytes


@dataclass
class Recorder:
    """``Recorder(app)`` is an ASGI app: serve it instead of ``app`` to record the REST answers."""

    app: ASGIApp
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        status, chunks = 0, []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        with self.lock:
            self.exchanges.append(
                Exchange(scope["method"], path[len(API_PREFIX) :], status, b"".join(chunks))
            )


# Known mistakes in the description, (method, template, path of the error in the body) → why it is ignored
DESCRIPTION_BUGS = {
    ("get", "/app/installations", "account"): (
        "the list's inline schema makes `account` allOf(simple-user, enterprise), which no user account can "
        "satisfy; GET /app/installations/{installation_id} says anyOf, as GitHub answers"
    ),
}


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    out = ""
    for index, part in enumerate(parts):
        if part.startswith("{"):
            last = index >= len(parts) - 2
            out += ".+" if last and part[1:-1] in MULTI_SEGMENT else "[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


@functools.cache
def _templates() -> list[tuple[str, frozenset[str], re.Pattern[str]]]:
    doc = openapi().doc
    return [(t, frozenset(ops), _template_regex(t)) for t, ops in doc["paths"].items()]


def operation_for(method: str, path: str) -> str | None:
    """The OpenAPI path template of a concrete request (fewest parameters among the matches)."""
    matches = [t for t, ops, regex in _templates() if method.lower() in ops and regex.fullmatch(path)]
    return min(matches, key=lambda t: (t.count("{"), -len(t)), default=None)


def problems(exchange: Exchange) -> list[str]:
    """Why this answer is not one GitHub documents (empty when it is)."""
    where = f"{exchange.method} {exchange.path} {exchange.status}"
    template = operation_for(exchange.method, exchange.path)
    if template is None:
        return [f"{where}: no such operation in GitHub's REST description"]
    responses = openapi().doc["paths"][template][exchange.method.lower()]["responses"]
    if str(exchange.status) not in responses:
        if exchange.status == 404:  # any operation may answer 404, documented or not: GitHub's error shape
            schema = openapi().schema({"$ref": "#/components/schemas/basic-error"})
            errors = list(openapi().validator(schema).iter_errors(json.loads(exchange.body)))
            return [f"{where}: {e.message[:200]}" for e in errors[:5]]
        return [f"{where}: status not documented for {template} (documented: {sorted(responses)})"]
    schema = openapi().response_schema(template, exchange.method.lower(), exchange.status)
    if exchange.status == 204 or (schema is None and exchange.status >= 400):
        return [f"{where}: a body where GitHub documents none"] if exchange.body else []
    if schema is None:
        return [f"{where}: GitHub documents no JSON body"]
    data: Any = json.loads(exchange.body)
    errors = sorted(openapi().validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    method = exchange.method.lower()
    errors = [
        e
        for e in errors
        if not any(
            (method, template, str(step)) in DESCRIPTION_BUGS
            for step in e.absolute_path
            if isinstance(step, str)
        )
    ]
    return [f"{where}: {list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]]
