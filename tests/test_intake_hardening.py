"""The webhook intake under abuse, through real HTTP: Otto's web app (the real router, handlers and Temporal
hand-off) on its production server stack (``app.webserver``: granian) in a thread; raw sockets where an HTTP
client can't misbehave enough."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from app.engine import EmbeddedTemporal, connect
from app.intake import sign
from app.runtime import web_app
from app.server import WebhookEndpoint
from app.settings import Settings
from app.webserver import RunningWeb, serve_in_thread
from tests.e2e import eventually

SECRET = "hardening-" + uuid.uuid4().hex
EXAMPLES = Path(__file__).parents[1] / ".cache" / "octokit" / "webhooks-examples.json"


def labeled_example() -> dict[str, Any]:
    for entry in json.loads(EXAMPLES.read_text()):
        if entry["name"] == "issues":
            for example in entry["examples"]:
                if example["action"] == "labeled":
                    return dict(example)
    raise AssertionError("no issues.labeled example")


LABELED = json.dumps(labeled_example(), separators=(",", ":")).encode()  # GitHub's compact form


@dataclass
class Intake:
    app: WebhookEndpoint
    server: RunningWeb
    settings: Settings

    @property
    def url(self) -> str:
        return f"{self.server.url}/webhooks"


@pytest.fixture(scope="module")
async def temporal_client(temporal_address: str) -> Client:
    return await connect(temporal_address, "default")


@pytest.fixture
def intake(temporal_client: Client, temporal_address: str) -> Iterator[Callable[..., Intake]]:
    """Start Otto's web app with settings overrides; every one started is stopped at the end."""
    started: list[RunningWeb] = []

    def start(client: Client | None = None, **overrides: Any) -> Intake:
        values: dict[str, Any] = {
            "webhook_secret": SecretStr(SECRET),
            "temporal_address": temporal_address,
            "trigger_label": "otto",
            "max_webhook_bytes": 1_000_000,
            "webhook_body_timeout_s": 30.0,
        }
        values.update(overrides)
        settings = Settings(_env_file=None, **values)
        app = web_app(settings, client or temporal_client)
        server = serve_in_thread(app, name="otto-web-hardening")
        started.append(server)
        return Intake(app, server, settings)

    yield start
    for server in started:
        server.stop()


def headers(
    body: bytes, event: str = "issues", delivery: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
    }


# --- raw HTTP ---------------------------------------------------------------------------------------


def open_raw(
    intake: Intake, head: dict[str, bytes | str], body: bytes = b"", path: str = "/webhooks"
) -> socket.socket:
    """Send a request head (and ``body``, possibly only part of what Content-Length declares)."""
    sock = socket.create_connection((intake.server.host, intake.server.port))
    sock.settimeout(60)  # a safety net against a hung test, not a measurement
    lines = [f"POST {path} HTTP/1.1".encode(), f"Host: {intake.server.host}".encode()]
    for name, value in head.items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


async def raw_answer(intake: Intake, head: dict[str, bytes | str], body: bytes) -> tuple[int, dict[str, Any]]:
    def go() -> tuple[int, dict[str, Any]]:
        with open_raw(intake, {**head, "Content-Length": str(len(body))}, body) as sock:
            status, _, payload = read_answer(sock)
            return status, json.loads(payload)

    return await asyncio.to_thread(go)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# --- headers and bodies that once answered 500 ------------------------------------------------------


async def test_a_non_ascii_signature_is_401(intake: Callable[..., Intake]) -> None:
    web = intake()
    delivery = str(uuid.uuid4())
    good = sign(SECRET, LABELED)
    for signature in ("sha256=" + "é" * 64, good[:-2] + "ü", "sha256=\u2603", "\u00e9" * 71):
        head: dict[str, bytes | str] = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature.encode("utf-8"),
        }
        status, answer = await raw_answer(web, head, LABELED)
        assert (status, answer["status"]) == (401, "bad signature"), signature
    latin1: dict[str, bytes | str] = {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": b"sha256=\xff\xfe",
    }
    assert (await raw_answer(web, latin1, LABELED))[0] == 401


async def test_deeply_nested_json_is_400_and_unsigned_401(intake: Callable[..., Intake]) -> None:
    web = intake()
    arrays = b"[" * 100_000 + b"]" * 100_000
    objects = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    in_payload = b'{"action":"labeled","issue":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with httpx.AsyncClient(timeout=60) as http:
        for body in (arrays, objects, in_payload):
            signed = await http.post(web.url, content=body, headers=headers(body))
            assert signed.status_code == 400, signed.text
            assert signed.json()["status"] == "body is not JSON"
            unsigned = await http.post(web.url, content=body, headers=headers(body, secret="wrong"))
            assert unsigned.status_code == 401
        # the server is still fine
        ok = await http.post(web.url, content=LABELED, headers=headers(LABELED))
    assert ok.status_code == 202
    assert ok.json()["status"] == "ignored: not the trigger label"


async def test_a_huge_or_strange_delivery_header_is_400_or_401(intake: Callable[..., Intake]) -> None:
    web = intake()
    trigger = json.loads(LABELED)
    trigger["label"]["name"] = "otto"
    trigger["sender"]["type"] = "User"
    trigger["installation"] = {"id": 1}
    body = json.dumps(trigger).encode()
    async with httpx.AsyncClient(timeout=60) as http:
        for delivery in ("d" * 20_000, "a" * 65, "../../etc/passwd", "a b", "-leading-dash", "x\tz"):
            signed = await http.post(web.url, content=body, headers=headers(body, delivery=delivery))
            assert signed.status_code == 400, delivery
            assert signed.json() == {"status": "malformed X-GitHub-Delivery header", "delivery": None}
            unsigned = await http.post(web.url, content=body, headers=headers(body, "issues", delivery, "no"))
            assert unsigned.status_code == 401
        non_ascii = await raw_answer(
            web,
            {
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": "dé".encode(),
                "X-Hub-Signature-256": sign(SECRET, body),
            },
            body,
        )
        assert non_ascii[0] == 400
        missing = headers(body)
        del missing["X-GitHub-Delivery"]
        no_delivery = await http.post(web.url, content=body, headers=missing)
        assert (no_delivery.status_code, no_delivery.json()["status"]) == (
            400,
            "missing X-GitHub-Delivery header",
        )
        weird_event = await http.post(web.url, content=body, headers=headers(body, event="issues/../x"))
        assert weird_event.status_code == 400
        assert weird_event.json()["status"] == "malformed X-GitHub-Event header"


# --- slow, stalled and vanishing uploads ------------------------------------------------------------


def partial_upload(web: Intake, sent: int, declared: int) -> socket.socket:
    body = LABELED.ljust(sent, b" ")[:sent]
    head: dict[str, bytes | str] = {**headers(body), "Content-Length": str(declared)}
    return open_raw(web, head, body)


async def test_a_stalled_upload_is_cut_off_with_408_and_its_buffer_released(
    intake: Callable[..., Intake],
) -> None:
    web = intake(webhook_body_timeout_s=2.0)
    socks = [partial_upload(web, 300_000, 900_000) for _ in range(3)]
    try:
        await eventually(lambda: web.app.buffered == 3 * 300_000)  # held while the uploads are pending
        answers = await asyncio.gather(*(asyncio.to_thread(read_answer, s) for s in socks))
        for status, response_headers, payload in answers:
            assert status == 408
            assert response_headers["connection"] == "close"
            assert json.loads(payload)["status"] == "body not received in time"
        assert all(closed_by_server(s) for s in socks)
        assert (web.app.reading, web.app.buffered) == (0, 0)
    finally:
        for s in socks:
            s.close()
    async with httpx.AsyncClient(timeout=60) as http:  # and the next delivery is served as usual
        ok = await http.post(web.url, content=LABELED, headers=headers(LABELED))
    assert ok.status_code == 202


async def test_too_many_bodies_at_once_get_503_until_the_readers_are_done(
    intake: Callable[..., Intake],
) -> None:
    web = intake(webhook_max_concurrent_reads=3)
    socks = [partial_upload(web, 1_000, 50_000) for _ in range(3)]
    try:
        await eventually(lambda: web.app.reading == 3)
        async with httpx.AsyncClient(timeout=60) as http:
            busy = await http.post(web.url, content=LABELED, headers=headers(LABELED))
            assert busy.status_code == 503
            assert busy.json()["status"] == "too many deliveries being received; retry later"
            for s in socks:
                s.close()
            await eventually(lambda: web.app.reading == 0)
            ok = await http.post(web.url, content=LABELED, headers=headers(LABELED))
        assert ok.status_code == 202
    finally:
        for s in socks:
            s.close()


async def test_bodies_held_at_once_are_bounded_in_bytes(intake: Callable[..., Intake]) -> None:
    web = intake(webhook_max_buffered_bytes=500_000)
    first = partial_upload(web, 400_000, 600_000)
    try:
        await eventually(lambda: web.app.buffered >= 400_000)
        second = partial_upload(web, 200_000, 600_000)  # would take the total past 500 kB
        with second:
            status, _, payload = await asyncio.to_thread(read_answer, second)
        assert status == 503
        assert json.loads(payload)["status"].startswith("too many deliveries")
        assert web.app.buffered >= 400_000  # the first upload goes on
    finally:
        first.close()
    await eventually(lambda: web.app.buffered == 0 and web.app.reading == 0)


async def test_a_client_gone_mid_body_is_one_log_line(
    intake: Callable[..., Intake], caplog: pytest.LogCaptureFixture
) -> None:
    web = intake()
    caplog.set_level(logging.DEBUG)
    delivery = str(uuid.uuid4())
    body = LABELED[:1000]
    head: dict[str, bytes | str] = {**headers(body, delivery=delivery), "Content-Length": "50000"}
    sock = open_raw(web, head, body)
    await eventually(lambda: web.app.reading == 1)
    sock.close()
    await eventually(lambda: web.app.reading == 0)
    mine = [r for r in caplog.records if delivery in r.getMessage()]
    assert [r.getMessage() for r in mine] == [
        f"delivery {delivery}: client disconnected after 1000 body bytes"
    ]
    assert mine[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- sizes and methods ------------------------------------------------------------------------------


async def test_size_limits_hold_for_declared_and_chunked_bodies(intake: Callable[..., Intake]) -> None:
    web = intake(max_webhook_bytes=100_000)
    big = LABELED.ljust(100_001, b" ")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 10_000):
            yield big[i : i + 10_000]

    async with httpx.AsyncClient(timeout=60) as http:
        declared = await http.post(web.url, content=big, headers=headers(big))
        chunked = await http.post(web.url, content=chunks(), headers=headers(big))
        just_fits = LABELED.ljust(100_000, b" ")
        fits = await http.post(web.url, content=just_fits, headers=headers(just_fits))
        get = await http.get(web.url)
        health = await http.get(f"{web.server.url}/healthz")
    assert "transfer-encoding" not in declared.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert (declared.status_code, chunked.status_code) == (413, 413)
    assert fits.status_code == 202
    assert get.status_code == 405
    assert get.headers["allow"] == "POST"
    assert health.status_code == 200

    # declared over twice the limit: refused before a byte of it is read, and the connection closed
    head: dict[str, bytes | str] = {**headers(LABELED), "Content-Length": "200001"}
    with open_raw(web, head) as sock:
        status, response_headers, _ = await asyncio.to_thread(read_answer, sock)
        assert (status, response_headers["connection"]) == (413, "close")
        assert closed_by_server(sock)
    assert (web.app.reading, web.app.buffered) == (0, 0)


# --- routing before parsing -------------------------------------------------------------------------


async def test_unregistered_actions_are_ignored_before_parsing_registered_ones_are_parsed(
    intake: Callable[..., Intake],
) -> None:
    web = intake()
    opened = b'{"action":"opened","issue":' + b"[" * 5000  # not even JSON: never parsed
    reordered = dict(json.loads(LABELED))
    action = reordered.pop("action")
    nested_first = json.dumps({"issue": {"action": "opened"}, **reordered, "action": action}).encode()
    async with httpx.AsyncClient(timeout=60) as http:
        early = await http.post(web.url, content=opened, headers=headers(opened))
        full = await http.post(web.url, content=nested_first, headers=headers(nested_first))
        unknown_event = await http.post(web.url, content=b"{nope", headers=headers(b"{nope", event="star"))
    assert (early.status_code, early.json()["status"]) == (202, "issues.opened ignored")
    assert (full.status_code, full.json()["status"]) == (202, "ignored: not the trigger label")
    assert (unknown_event.status_code, unknown_event.json()["status"]) == (202, "event 'star' ignored")


# --- the engine away ----------------------------------------------------------------------------------


async def test_temporal_unreachable_is_503_not_500(intake: Callable[..., Intake], tmp_path: Path) -> None:
    temporal = EmbeddedTemporal(tmp_path / "temporal")
    address = await temporal.start()
    try:
        client = await connect(address, "default")
        web = intake(client=client, temporal_address=address)
    finally:
        await asyncio.to_thread(temporal.stop)
    trigger = json.loads(LABELED)
    trigger["label"]["name"] = "otto"
    trigger["sender"]["type"] = "User"
    trigger["installation"] = {"id": 1}
    body = json.dumps(trigger).encode()
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(web.url, content=body, headers=headers(body))
    assert answer.status_code == 503
    assert answer.json()["status"] == "engine unavailable; redeliver later"
