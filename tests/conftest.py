"""Shared fixtures: one Temporal dev server, one local world (GitHub simulator + scripted model) and one
running Otto (real web server over HTTP + worker) per test session."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from app.dev.local import PROJECT_SANDBOX_TOOLS, LocalWorld, running_otto
from app.engine import EmbeddedTemporal, connect, ensure_retention
from tests.e2e import Otto, Repo
from tests.mission_control import CHROMIUM, CHROMIUM_ARGS, MC, mission_control_world
from tests.sandboxing import traversable

_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def sandbox_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of `make`'s sandbox toolchain (a venv with pytest) where the sandbox's uid can read it."""
    source = PROJECT_SANDBOX_TOOLS
    if not (source / "bin" / "python").exists():
        pytest.exit(f"{source} is missing: run the tests with `make test`, which builds it", returncode=2)
    base = tmp_path_factory.getbasetemp()
    traversable(base, Path(tempfile.gettempdir()))
    copy = base / "sandbox-tools"
    shutil.copytree(source, copy, symlinks=True)
    copy.chmod(0o755)
    LocalWorld.sandbox_tools = [copy]
    return copy


@pytest.fixture(autouse=True)
def _traversable_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    # again for every test: another pytest session of the same user resets pytest-of-<user> to 0700
    traversable(tmp_path_factory.getbasetemp(), Path(tempfile.gettempdir()))
    if "tmp_path" in request.fixturenames:
        tmp_path: Path = request.getfixturevalue("tmp_path")
        traversable(tmp_path, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedTemporal(tmp_path_factory.mktemp("temporal"))
    address = asyncio.run(server.start())
    yield address
    server.stop()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWorld]:
    w = LocalWorld.start(tmp_path_factory.mktemp("world"))
    yield w
    w.stop()


@pytest.fixture(scope="session")
async def otto(
    world: LocalWorld, temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Otto]:
    data = tmp_path_factory.mktemp("otto")
    traversable(data, tmp_path_factory.getbasetemp())
    key = tmp_path_factory.mktemp("keys") / "app.pem"  # a key file, as operators keep it
    key.write_text(world.private_key_pem)
    key.chmod(0o600)
    settings = world.settings(
        data,
        temporal_address,
        github_private_key=None,
        github_private_key_path=key,
        sandbox_memory_mb=768,  # small enough for the tests' memory hog to hit
        sandbox_pids=128,
        max_parallel_tasks=2,
        agent_max_steps=12,
        heartbeat_timeout_s=2.0,
        max_active_runs_per_installation=1,
    )
    client = await connect(temporal_address, settings.temporal_namespace)
    await ensure_retention(client, settings.temporal_namespace)
    async with running_otto(world, settings, client) as server:
        yield Otto(world, settings, client, server)


@pytest.fixture
def repo(otto: Otto) -> Callable[..., Repo]:
    """A fresh organisation + repository with the App installed, a maintainer and a read-only outsider."""

    def make(files: dict[str, str] | None = None) -> Repo:
        from app.dev.demo import SAMPLE_REPO

        n = next(_names)
        r = Repo(owner=f"org{n}", name="greeter", maintainer=f"maint{n}", outsider=f"visitor{n}")
        sim = otto.sim
        sim.create_user(r.owner, type="Organization")
        sim.create_user(r.maintainer)
        sim.create_user(r.outsider)
        sim.create_repo(r.owner, r.name, files if files is not None else SAMPLE_REPO)
        sim.set_permission(r.owner, r.name, r.maintainer, "write")
        sim.set_permission(r.owner, r.name, r.outsider, "read")
        sim.install_app(otto.world.app_id, r.owner)
        return r

    return make


@pytest.fixture(scope="session")
async def mc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MC]:
    """Mission Control's own world (Temporal, simulator, gated model, Otto), two repositories and their
    people, with the demo's run on A and one run on B settled (see tests/mission_control.py)."""
    root = tmp_path_factory.mktemp("mission-control")
    traversable(root, tmp_path_factory.getbasetemp())
    async with mission_control_world(root) as world:
        yield world


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium through Playwright, for Mission Control's browser tests (one per worker)."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


# --- the suite in parallel (pytest-xdist, `make test`) ------------------------------------------------------
# xdist hands tests to its workers in collection order, so the longest ones are collected first: a 30-second
# crash test started last would be the whole run's tail. Files not named here keep their order, after these.
LONGEST_FIRST = (
    "test_crashes.py",  # real `otto serve` processes, SIGKILLed and restarted
    "test_outages.py",  # real `otto serve` processes through outages of GitHub, the model and the disk
    "test_operations.py",
    "test_faults.py",
    "test_mission_control.py",  # one group (GROUPS), with the browser tests
    "test_mission_control_browser.py",
    "test_demo_links_browser.py",
    "test_merge_e2e.py",
    "test_failures_e2e.py",
    "test_maintainer_loop.py",
    "test_lifecycle_e2e.py",
    "test_run_e2e.py",
    "test_containment.py",
)
# Files that share an expensive session fixture run on one worker: Mission Control's world and its browser are
# built once, not once per worker. (pytest-xdist's own `xdist_group` mark renames the tests' node ids, which
# pytest 9 no longer lets it do, so `make test`'s `--dist loadgroup` uses this scheduler instead.)
GROUPS = {
    "tests/test_outages.py": "outages",  # one world and one `otto serve` for its stories
    "tests/test_mission_control.py": "mission-control",
    "tests/test_mission_control_browser.py": "mission-control",
    "tests/test_demo_links_browser.py": "mission-control",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileGroups(LoadGroupScheduling):  # type: ignore[misc]  # xdist ships no type information
        """Tests of a file in GROUPS go to one worker together; every other test on its own, as `load`."""

        def _split_scope(self, nodeid: str) -> str:
            return GROUPS.get(nodeid.split("::", 1)[0], nodeid)

    return FileGroups(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a file's own order is kept
