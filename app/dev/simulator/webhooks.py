"""Signed webhook deliveries: synchronous for human actions, an ordered background queue for events
caused by the App's own REST calls and git pushes."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from app.dev.simulator.state import Delivery

USER_AGENT = "GitHub-Hookshot/sim"


def signature_256(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_delivery(
    event: str,
    payload: dict[str, Any],
    app_id: int,
    hook_id: int,
    secret: str,
    delivery_id: str | None = None,
) -> Delivery:
    body = json.dumps(payload, separators=(",", ":")).encode()
    guid = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid,
        "X-GitHub-Hook-ID": str(hook_id),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-GitHub-Hook-Installation-Target-ID": str(app_id),
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": signature_256(secret, body),
    }
    action = payload.get("action")
    return Delivery(
        id=guid,
        event=event,
        action=action if isinstance(action, str) else None,
        app_id=app_id,
        body=body,
        headers=headers,
    )


_local = threading.local()


def _client() -> httpx.Client:
    """One HTTP client per thread (building a client costs an SSL context; deliveries are frequent)."""
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(timeout=10.0)
        _local.client = client
    return client


def post(delivery: Delivery, url: str | None, timeout: float = 10.0) -> Delivery:
    """POST the delivery to ``url`` and record the outcome on it (GitHub waits at most 10 s)."""
    if url is None:
        delivery.error = "no webhook URL"
        return delivery
    try:
        response = _client().post(url, content=delivery.body, headers=delivery.headers, timeout=timeout)
    except httpx.HTTPError as exc:
        delivery.error = f"{type(exc).__name__}: {exc}"
        return delivery
    delivery.status_code = response.status_code
    delivery.response_body = response.text
    return delivery


class DeliveryQueue:
    """One background thread posting queued deliveries in order."""

    def __init__(self, resolve_url: Callable[[int], str | None]) -> None:
        self._resolve_url = resolve_url
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._thread.start()

    def put(self, delivery: Delivery) -> None:
        with self._cond:
            self._pending += 1
        self._queue.put(delivery)

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._pending} webhook deliveries still pending")
                self._cond.wait(remaining)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                client: httpx.Client | None = getattr(_local, "client", None)
                if client is not None:
                    client.close()
                return
            try:
                post(delivery, self._resolve_url(delivery.app_id))
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()
