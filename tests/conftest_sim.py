"""Shared helpers for the simulator tests: a running simulator with an App, users, a repo, a webhook
receiver and githubkit clients (imported by tests/test_simulator_*.py)."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.dev.local import new_private_key
from app.dev.simulator import Simulator, create_app
from app.serve_thread import RunningServer, serve_in_thread

APP_ID = 4242
SECRET = "It's a Secret to Everybody"
OWNER = "alice"
REPO = "demo"
FILES = {"README.md": "# Demo\n", "src/app.py": "def add(a, b):\n    return a + b\n"}
OCTOKIT = Path(__file__).resolve().parent.parent / ".cache" / "octokit"


@functools.cache
def rsa_pair() -> tuple[str, str]:
    return new_private_key()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint that records what it receives and answers 200."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: RunningServer | None = None

    async def handle(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        with self.lock:
            self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        return PlainTextResponse("ok")

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/webhooks"


@dataclass
class World:
    sim: Simulator
    url: str
    installation_id: int
    private_key: str
    receiver: Receiver
    tmp: Path
    http: httpx.Client

    @property
    def api(self) -> str:
        return f"{self.url}/api/v3/"

    def app_client(self) -> GitHub[Any]:
        return GitHub(AppAuthStrategy(APP_ID, self.private_key), base_url=self.api, auto_retry=False)

    def installation_token(self) -> str:
        with self.app_client() as gh:
            resp = gh.rest.apps.create_installation_access_token(self.installation_id)
            return str(resp.parsed_data.token)

    def client(self, token: str) -> GitHub[Any]:
        return GitHub(TokenAuthStrategy(token), base_url=self.api, auto_retry=False)

    def git(
        self, *args: str, cwd: Path | None = None, token: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["git"]
        if token is not None:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            cmd += ["-c", f"http.extraheader=AUTHORIZATION: basic {basic}"]
        env = {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "HOME": str(self.tmp),
        }
        return subprocess.run(
            cmd + list(args), cwd=cwd, capture_output=True, text=True, env=env, check=check, timeout=60
        )

    def clone_url(self) -> str:
        return f"{self.url}/{OWNER}/{REPO}.git"

    def payloads(self, event: str, action: str | None = None) -> list[dict[str, Any]]:
        return [d.payload for d in self.sim.deliveries_of(event, action)]


@dataclass
class Servers:
    simulator: RunningServer
    app: FastAPI
    receiver: Receiver


@pytest.fixture(scope="session", name="sim_servers")
def sim_servers_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The simulator's HTTP server and a webhook receiver, started once; each test swaps in a fresh
    Simulator (``app.state.sim``)."""
    receiver = Receiver()
    receiver.server = serve_in_thread(
        Starlette(routes=[Route("/webhooks", receiver.handle, methods=["POST"])]), name="receiver"
    )
    placeholder = Simulator(tmp_path_factory.mktemp("placeholder"))
    app = create_app(placeholder)
    running = serve_in_thread(app, name="simulator")
    try:
        yield Servers(running, app, receiver)
    finally:
        placeholder.close()
        running.stop()
        receiver.server.stop()


@pytest.fixture(name="world")
def world_fixture(tmp_path: Path, sim_servers: Servers) -> Iterator[World]:
    private, public = rsa_pair()
    receiver = sim_servers.receiver
    with receiver.lock:
        receiver.received.clear()
    sim = Simulator(tmp_path / "github", base_url=sim_servers.simulator.url)
    sim_servers.app.state.sim = sim
    try:
        sim.register_app(APP_ID, "otto", public, webhook_url=receiver.url, webhook_secret=SECRET)
        for login in ("bob", "carol", "mallory"):
            sim.create_user(login)
        sim.create_user(OWNER)
        sim.create_repo(OWNER, REPO, FILES)
        sim.set_permission(OWNER, REPO, "bob", "write")
        sim.set_permission(OWNER, REPO, "carol", "read")
        installation_id = sim.install_app(APP_ID, OWNER)
        with httpx.Client(timeout=30) as http:
            yield World(sim, sim_servers.simulator.url, installation_id, private, receiver, tmp_path, http)
    finally:
        sim.wait_for_deliveries_idle(10)
        sim.close()


def load_json(name: str) -> Any:
    path = OCTOKIT / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `make test` (it fetches GitHub's published descriptions)"
        )
    return json.loads(path.read_text())
