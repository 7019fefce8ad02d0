"""``/healthz`` and ``/readyz`` of Otto's web app on its production server stack, against the GitHub
simulator and real Temporal dev servers: ready when Temporal answers and the App can authenticate, not ready
(503, the failed check named) when either can't; a probe costs nothing (answers are cached); a dead
embedded engine makes the process unhealthy."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from app.dev.local import LocalWorld, new_private_key
from app.engine import EmbeddedTemporal, connect, temporal_client
from app.health import Probes
from app.runtime import web_app
from app.settings import Settings
from app.webserver import RunningWeb, serve_in_thread
from tests.e2e import eventually


@pytest.fixture
def serve(world: LocalWorld) -> Iterator[Callable[..., tuple[RunningWeb, Probes]]]:
    """Otto's web app for ``client`` with settings from the world (overridable); stopped at the end."""
    started: list[RunningWeb] = []

    def start(client: Client, data_dir: Path, address: str, **overrides: Any) -> tuple[RunningWeb, Probes]:
        settings = world.settings(data_dir, address, **overrides)
        probes = Probes(settings, client)
        server = serve_in_thread(web_app(settings, client, probes=probes), name="otto-web-probes")
        started.append(server)
        return server, probes

    yield start
    for server in started:
        server.stop()


async def get(server: RunningWeb, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(f"{server.url}{path}")


async def test_ready_when_temporal_answers_and_the_app_authenticates(
    serve: Callable[..., tuple[RunningWeb, Probes]], world: LocalWorld, temporal_address: str, tmp_path: Path
) -> None:
    client = await connect(temporal_address, "default")
    server, _ = serve(client, tmp_path, temporal_address)
    answer = await get(server, "/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert "failed" not in body
    assert body["checks"]["temporal"]["ok"]
    assert body["checks"]["github"]["ok"]
    assert (await get(server, "/healthz")).json() == {"status": "ok"}


async def test_a_probe_costs_nothing_the_checks_are_cached(
    serve: Callable[..., tuple[RunningWeb, Probes]], world: LocalWorld, temporal_address: str, tmp_path: Path
) -> None:
    client = await connect(temporal_address, "default")
    server, probes = serve(client, tmp_path, temporal_address, ready_cache_s=3600)
    before = world.sim.count_calls("GET", "/app")
    answers = await asyncio.gather(*(get(server, "/readyz") for _ in range(20)))
    answers += [await get(server, "/readyz") for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    assert world.sim.count_calls("GET", "/app") - before == 1  # one GET /app for 25 probes, 20 at once
    assert [c.runs for c in probes.checks] == [1, 1]


async def test_a_wrong_app_key_is_not_ready_and_says_github(
    serve: Callable[..., tuple[RunningWeb, Probes]], world: LocalWorld, temporal_address: str, tmp_path: Path
) -> None:
    client = await connect(temporal_address, "default")
    app = world.sim.app(world.app_id)
    server, _ = serve(client, tmp_path, temporal_address, ready_cache_s=0)
    assert (await get(server, "/readyz")).status_code == 200
    registered, app.public_key_pem = app.public_key_pem, new_private_key()[1]  # the App's key was rotated
    try:
        answer = await get(server, "/readyz")
    finally:
        app.public_key_pem = registered
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    assert body["failed"] == ["github"]
    assert "refused the App's JWT (401)" in body["checks"]["github"]["detail"]
    assert body["checks"]["temporal"]["ok"]
    assert world.private_key_pem.splitlines()[1] not in answer.text
    assert (await get(server, "/healthz")).status_code == 200  # alive: restarting would not help
    assert (await get(server, "/readyz")).status_code == 200  # the key is right again: ready again


async def test_github_unreachable_is_not_ready(
    serve: Callable[..., tuple[RunningWeb, Probes]], temporal_address: str, tmp_path: Path
) -> None:
    client = await connect(temporal_address, "default")
    with socket.socket() as closed:  # a port nobody listens on: the simulator is down
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    server, _ = serve(client, tmp_path, temporal_address, github_api_url=f"http://127.0.0.1:{port}/api/v3")
    answer = await get(server, "/readyz")
    assert answer.status_code == 503
    assert answer.json()["failed"] == ["github"]
    assert "GitHub is unreachable" in answer.json()["checks"]["github"]["detail"]


async def test_a_github_that_never_answers_fails_the_check_in_bounded_time(
    serve: Callable[..., tuple[RunningWeb, Probes]], temporal_address: str, tmp_path: Path
) -> None:
    client = await connect(temporal_address, "default")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = silent.getsockname()[1]
        server, _ = serve(
            client,
            tmp_path,
            temporal_address,
            github_api_url=f"http://127.0.0.1:{port}/api/v3",
            ready_timeout_s=0.5,
        )
        answer = await get(server, "/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["github"]["detail"] in (
            "no answer within 0.5 s",
            "GitHub did not answer in time",
        )
    finally:
        stop.set()
        thread.join()
        for s in [*accepted, silent]:
            s.close()


async def test_a_stopped_temporal_is_not_ready(
    serve: Callable[..., tuple[RunningWeb, Probes]], tmp_path: Path
) -> None:
    temporal = EmbeddedTemporal(tmp_path / "temporal")
    address = await temporal.start()
    try:
        client = await connect(address, "default")
        server, _ = serve(client, tmp_path / "otto", address, ready_cache_s=0)
        assert (await get(server, "/readyz")).status_code == 200
        await asyncio.to_thread(temporal.stop)
        answer = await get(server, "/readyz")
    finally:
        temporal.stop()
    assert answer.status_code == 503
    body = answer.json()
    assert body["failed"] == ["temporal"]
    assert body["checks"]["github"]["ok"]
    assert body["checks"]["temporal"]["detail"].startswith("Temporal did not answer")


async def test_a_dead_embedded_engine_makes_the_process_unhealthy(world: LocalWorld, tmp_path: Path) -> None:
    """Wired as ``otto serve`` wires it: the embedded server's watch marks the probes (Otto then shuts down,
    see test_operations)."""
    settings: Settings = world.settings(tmp_path / "otto", None)
    probes: list[Probes] = []
    deaths: list[int | None] = []

    def died(code: int | None) -> None:
        deaths.append(code)
        for p in probes:
            p.engine_died(code)

    async with temporal_client(settings, on_engine_death=died) as client:
        probes.append(Probes(settings, client))
        server = serve_in_thread(web_app(settings, client, probes=probes[0]), name="otto-web-engine")
        try:
            assert (await get(server, "/healthz")).status_code == 200
            engine = int((settings.data_dir / "temporal" / "server.pid").read_text())
            os.kill(engine, signal.SIGKILL)  # as the OOM killer would
            await eventually(lambda: deaths, within=30)
            health = await get(server, "/healthz")
            ready = await get(server, "/readyz")
        finally:
            server.stop()
    assert deaths == [-signal.SIGKILL]
    assert health.status_code == 503
    assert "embedded Temporal server exited" in health.json()["reason"]
    assert ready.status_code == 503
    assert "engine" in ready.json()["failed"]
