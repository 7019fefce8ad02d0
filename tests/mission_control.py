"""A local world for Mission Control's tests: its own Temporal dev server, GitHub simulator and scripted model
(with a gate a test can close on one agent step, to look at a run while it is running), Otto serving the UI,
two repositories and the people who may or may not read them, and helpers to sign in over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, Page, expect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from app.artifacts import ArtifactStore, store_from_settings
from app.dev.demo import SAMPLE_REPO
from app.dev.fake_llm.scenario import identify
from app.dev.local import LocalWorld, running_otto
from app.domain.run import RepoRef, RunState
from app.engine import EmbeddedTemporal, connect, ensure_retention
from app.settings import Settings
from app.webserver import RunningWeb
from tests.e2e import Repo, demo_scenario, settled, wait_for_state
from tests.s3_server import running_s3


class ModelGate:
    """ASGI wrapper around the scripted model: while closed for (key, step), agent requests for that step
    wait (in the model server) until the test opens it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.key: str | None = None
        self.step = 0
        self.opened = threading.Event()
        self.reached = threading.Event()

    def close(self, key: str, step: int) -> None:
        self.key, self.step = key, step
        self.opened.clear()
        self.reached.clear()

    def open(self) -> None:
        self.opened.set()
        self.key = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/messages" or self.key is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        try:
            role, key, step = identify(json.loads(body))
        except (ValueError, AttributeError):
            role, key, step = "?", "?", -1
        if role == "agent" and key == self.key and step == self.step:
            self.reached.set()
            await asyncio.to_thread(self.opened.wait, 120)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@dataclass
class MC:
    root: Path
    world: LocalWorld
    settings: Settings
    client: Client
    server: RunningWeb
    gate: ModelGate
    a: Repo
    b: Repo
    reader: str  # can read A, can't write
    demo_issue: int = 0
    b_issue: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sim(self) -> Any:
        return self.world.sim

    @property
    def url(self) -> str:
        return self.server.url

    def repo_id(self, r: Repo) -> int:
        rid: int = self.sim.repo(r.owner, r.name).id
        return rid

    @property
    def store(self) -> ArtifactStore:
        return store_from_settings(self.settings)

    def repo_ref(self, r: Repo) -> RepoRef:
        inst = self.sim.installation_for(self.world.app_id, r.owner)
        return RepoRef(installation_id=inst.id, owner=r.owner, name=r.name, repo_id=self.repo_id(r))

    def run_path(self, r: Repo, number: int) -> str:
        return f"/runs/{self.repo_id(r)}/{number}"

    async def state(self, r: Repo, number: int) -> RunState:
        return await wait_for_state(self.client, self.repo_id(r), number, lambda _s: True)

    async def run_issue(self, r: Repo, title: str, body: str, scenario: dict[str, Any] | None = None) -> int:
        """Open and label an issue as A's or B's maintainer, and wait for the run to settle."""
        if scenario is not None:
            self.world.model.load(scenario)
        number: int = self.sim.create_issue(r.owner, r.name, title, body, r.maintainer)
        self.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
        await wait_for_state(self.client, self.repo_id(r), number, settled, within=120)
        return number

    def start_issue(self, r: Repo, title: str, body: str) -> int:
        number: int = self.sim.create_issue(r.owner, r.name, title, body, r.maintainer)
        self.sim.add_label(r.owner, r.name, number, "otto", r.maintainer)
        return number

    @contextlib.asynccontextmanager
    async def signed_in(self, login: str) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client with ``login``'s Mission Control session, obtained through the OAuth flow."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            await sign_in(http, login)
            yield http


async def until(check: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    """Poll an async condition (the run happens in the worker, the pages follow its status publishes)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {within}s")


async def sign_in(http: httpx.AsyncClient, login: str) -> httpx.Response:
    """GET /login → the simulator's authorize page (as ``login``) → /login/callback → the session cookie."""
    start = await http.get("/login", params={"next": "/runs"})
    assert start.status_code == 302, start.text
    authorize = start.headers["location"] + f"&login={login}"
    async with httpx.AsyncClient(timeout=30) as github:
        granted = await github.get(authorize)
    assert granted.status_code == 302, granted.text
    back = urlsplit(granted.headers["location"])
    done = await http.get(f"{back.path}?{back.query}")
    assert done.status_code == 303, done.text
    return done


async def signed_in_page(browser: Browser, mc: MC, login: str, path: str = "/runs") -> Page:
    """A fresh browser context that signs in through the pages, as a person would."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(mc.url + path)
    await expect(page.locator("h1")).to_have_text("Sign in")
    await page.click("#signin")
    await page.click(f"button[value='{login}']")  # the simulator's authorize page
    await page.wait_for_url(mc.url + path)
    await expect(page.locator("header.top .who span")).to_have_text(f"@{login}")
    return page


@contextlib.asynccontextmanager
async def mission_control_world(root: Path) -> AsyncIterator[MC]:
    gate_box: list[ModelGate] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        gate_box.append(ModelGate(app))
        return gate_box[0]

    async with contextlib.AsyncExitStack() as stack:
        temporal = EmbeddedTemporal(root / "temporal")
        address = await temporal.start()
        stack.callback(temporal.stop)
        world = LocalWorld.start(root / "world", demo_scenario(), wrap_model=wrap)
        stack.callback(world.stop)
        s3 = await stack.enter_async_context(running_s3(root / "s3"))
        # every artifact and snapshot goes through S3 (moto's server): workers write, the web process reads
        settings = world.settings(
            root / "otto",
            address,
            command_path_prepend=[str(Path(sys.executable).parent)],
            agent_max_steps=12,
            heartbeat_timeout_s=5.0,
            max_active_runs_per_installation=4,
            artifact_sync_s=0.5,
            **s3.settings("mission-control"),
        )
        client = await connect(address, settings.temporal_namespace)
        await ensure_retention(client, settings.temporal_namespace)
        a = Repo(owner="acme", name="greeter", maintainer="alice", outsider="rita")
        b = Repo(owner="bravo", name="widgets", maintainer="bob", outsider="rita")
        sim = world.sim
        for r in (a, b):
            sim.create_user(r.owner, type="Organization")
            sim.create_user(r.maintainer)
            sim.create_repo(r.owner, r.name, dict(SAMPLE_REPO))
            sim.set_permission(r.owner, r.name, r.maintainer, "write")
            sim.install_app(world.app_id, r.owner)
        sim.create_user("rita")
        sim.set_permission(a.owner, a.name, "rita", "read")
        server = await stack.enter_async_context(running_otto(world, settings, client))
        mc = MC(root, world, settings, client, server, gate_box[0], a, b, reader="rita")
        # the demo's story on A, and one run on B, side by side
        demo = mc.start_issue(a, "Add a shout mode", "A `shout(name)` function and a `--shout` flag.")
        other = mc.start_issue(b, "Add a shout mode to widgets", "Same, for widgets.")
        for r, n in ((a, demo), (b, other)):
            await wait_for_state(client, mc.repo_id(r), n, settled, within=180)
        mc.demo_issue, mc.b_issue = demo, other
        yield mc


# Debian's chromium (Playwright can't download its own browser here); `make test` installs it when missing
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
