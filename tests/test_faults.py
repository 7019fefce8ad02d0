"""Faults survived, nothing lost, nothing twice: a worker killed mid-task, Temporal restarted mid-run, a human
pushing to the task branch while Otto works on it, a model answering errors. Each test counts the
simulator's side effects (status comments, PRs, pushes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from app.dev.demo import SAMPLE_REPO
from app.dev.local import LocalWorld, running_otto
from app.domain.run import RunPhase, TaskStatus
from app.engine import EmbeddedTemporal, connect, ensure_retention
from app.runtime import web_app
from app.webserver import RunningWeb, serve_in_thread
from bench.common import VENV_BIN, ManagedProcess, otto_env
from tests.e2e import Otto, Repo, eventually, label_new_issue, settled, status_comment, wait_for_state
from tests.test_failures_e2e import NO_FIX_ROUNDS, SINGLE, create, head, pr_of, scenario, task

TWO = [task("t1", "Add module a"), task("t2", "Add module b")]
# a dead worker's runs move on quickly: short heartbeat and sticky-queue timeouts
WORKER_ENV = {
    "heartbeat_timeout_s": 2.0,
    "sticky_queue_timeout_s": 2.0,
    "max_parallel_tasks": 2,
    "agent_max_steps": 12,
}


@dataclass
class Cluster:
    """Own Temporal dev server and world; Otto's web server in this process, workers as `otto worker`."""

    root: Path
    world: LocalWorld
    client: Client
    web: RunningWeb
    workers: list[ManagedProcess] = field(default_factory=list)

    def start_worker(self, **settings: object) -> ManagedProcess:
        n = len(self.workers) + 1
        proc = ManagedProcess(
            f"otto worker {n}",
            [str(VENV_BIN / "otto"), "worker", "--log-level", "warning"],
            self.root / f"worker-{n}.log",
            env=otto_env(
                self.world, self.root / "otto", self.temporal_address, 0, **{**WORKER_ENV, **settings}
            ),
            cwd=self.root,
        )
        self.workers.append(proc)
        return proc.start()

    @property
    def temporal_address(self) -> str:
        return str(self.world.extra["temporal"])


def _kill_strays(root: Path) -> None:
    """Commands a SIGKILLed worker left behind (they run in their own sessions): those working under root."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if Path(os.readlink(entry / "cwd")).is_relative_to(root):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    temporal = EmbeddedTemporal(root / "temporal")
    address = await temporal.start()
    world = LocalWorld.start(root / "world")
    world.extra["temporal"] = address
    web: RunningWeb | None = None
    c: Cluster | None = None
    try:
        settings = world.settings(root / "otto", address)
        client = await connect(address, settings.temporal_namespace)
        await ensure_retention(client, settings.temporal_namespace)
        web = serve_in_thread(web_app(settings, client), name="otto-web")
        world.sim.set_webhook_url(world.app_id, f"{web.url}/webhooks")
        c = Cluster(root, world, client, web)
        yield c
    finally:
        for w in c.workers if c else []:
            w.stop()
        _kill_strays(root)
        if web is not None:
            web.stop()
        world.stop()
        temporal.stop()


@pytest.fixture
def cluster_workers(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, with every worker a test started stopped when it ends (the next test starts afresh)."""
    try:
        yield cluster
    finally:
        for w in cluster.workers:
            w.stop()
        cluster.workers.clear()
        _kill_strays(cluster.root)


def new_repo(sim: Any, app_id: int, name: str, files: dict[str, str]) -> Repo:
    r = Repo(owner=name, name="greeter", maintainer=f"{name}-maint", outsider=f"{name}-visitor")
    sim.create_user(r.owner, type="Organization")
    sim.create_user(r.maintainer)
    sim.create_repo(r.owner, r.name, files)
    sim.set_permission(r.owner, r.name, r.maintainer, "write")
    sim.install_app(app_id, r.owner)
    return r


def assert_nothing_twice(sim: Any, r: Repo, number: int, branches: list[str]) -> None:
    """One status comment (created once), one PR per task, no sha pushed twice, nothing forced."""
    assert sim.count_calls("POST", f"/repos/{r.owner}/{r.name}/issues/{number}/comments") == 1
    pulls = sim.pulls(r.owner, r.name)
    assert sorted(p.head_ref for p in pulls) == sorted(branches)
    updates = [u for p in sim.pushes if p.owner == r.owner and p.repo == r.name for u in p.updates]
    pushed = [(ref, new) for ref, _old, new in updates]
    assert len(pushed) == len(set(pushed)), pushed
    for ref, old, new in updates:
        if old is not None and new is not None:
            assert old in [c.sha for c in sim.git_log(r.owner, r.name, new)], f"{ref} forced over {old}"


async def test_without_a_sandbox_no_task_runs_and_the_run_says_why(cluster_workers: Cluster) -> None:
    cluster = cluster_workers
    sim, world = cluster.world.sim, cluster.world
    world.model.load(scenario(SINGLE, {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}]}))
    r = new_repo(sim, world.app_id, "nosandbox", dict(SAMPLE_REPO))
    cluster.start_worker(sandbox_bwrap_path="/nonexistent/bwrap")  # as on a host where bwrap can't run
    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(cluster.client, rid, number, settled, within=60)
    assert state.phase == RunPhase.FAILED
    assert "Otto will not run this task's commands" in state.reason
    assert "OTTO_SANDBOX=off" in state.reason
    assert world.model.requests_for("agent", "t1") == []  # fail closed: not one agent step
    assert sim.pulls(r.owner, r.name) == []
    assert not [b for b in sim.branches(r.owner, r.name) if "otto/" in b]
    await eventually(lambda: "bubblewrap could not start a sandbox here" in _bot_comment(sim, r, number))


async def test_sandbox_off_is_loud_in_every_status_comment(cluster_workers: Cluster) -> None:
    cluster = cluster_workers
    sim, world = cluster.world.sim, cluster.world
    world.model.load(scenario(SINGLE, {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}]}))
    r = new_repo(sim, world.app_id, "sandboxoff", dict(SAMPLE_REPO))
    cluster.start_worker(sandbox="off")
    number, rid = label_new_issue(sim, r)
    state = await wait_for_state(cluster.client, rid, number, settled, within=60)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    await eventually(lambda: "OTTO_SANDBOX=off" in _bot_comment(sim, r, number))
    assert "WITHOUT a sandbox" in _bot_comment(sim, r, number)


def agent_steps(world: LocalWorld, key: str, step: int) -> int:
    return len([q for q in world.model.requests_for("agent", key) if q.step == step])


async def test_worker_killed_during_the_agent_the_run_finishes_on_another_worker(
    cluster_workers: Cluster,
) -> None:
    cluster = cluster_workers
    sim, world = cluster.world.sim, cluster.world
    agents = {
        "t1": [{**create("a.py", "A = 1\n"), "hold": "t1-starting"}, {"text": "Added a.py."}],
        "t2": [create("b.py", "B = 2\n"), {"text": "Added b.py."}],
    }
    world.model.load(scenario(TWO, agents))
    r = new_repo(sim, world.app_id, "killagent", dict(SAMPLE_REPO))
    first = cluster.start_worker()
    number, rid = label_new_issue(sim, r)
    await wait_for_state(
        cluster.client, rid, number, lambda s: bool(s.tasks) and s.record("t1").status == TaskStatus.RUNNING
    )
    await world.model.held("t1-starting")  # the agent is in the middle of its first step
    os.kill(first.pid, signal.SIGKILL)
    await eventually(lambda: world.model.holding("t1-starting") == 0)  # the model saw its client go
    cluster.start_worker()
    world.model.release("t1-starting")

    state = await wait_for_state(cluster.client, rid, number, settled, within=60)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert [state.record(t).status for t in ("t1", "t2")] == [TaskStatus.PASSED] * 2
    # the dead attempt's agent was started over, cleanly: its held step never answered (its client gone)
    assert [q.status for q in world.model.requests_for("agent", "t1") if q.step == 0] == [499, 200]
    assert_nothing_twice(sim, r, number, [state.record(t).branch for t in ("t1", "t2")])
    await eventually(lambda: "waiting for your review" in _bot_comment(sim, r, number))


async def test_worker_killed_during_verification_resumes_without_the_agent(cluster_workers: Cluster) -> None:
    cluster = cluster_workers
    sim, world = cluster.world.sim, cluster.world
    world.model.load(scenario(SINGLE, {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}]}))
    slow_verify = {**SAMPLE_REPO, ".github/otto.yml": "verify: sleep 3 && python -m pytest -q\n"}
    r = new_repo(sim, world.app_id, "killverify", slow_verify)
    first = cluster.start_worker()
    number, rid = label_new_issue(sim, r)

    async def wip_recorded() -> bool:
        handle = cluster.client.get_workflow_handle(f"otto/{rid}/{number}")
        for pending in (await handle.describe()).raw_description.pending_activities:
            for payload in pending.heartbeat_details.payloads:
                if "wip_sha" in json.loads(payload.data):
                    return True
        return False

    await eventually(lambda: any(b.startswith("otto/") for b in sim.branches(r.owner, r.name)))
    await _eventually_async(wip_recorded)  # the work in progress is pushed and in the heartbeat details
    os.kill(first.pid, signal.SIGKILL)
    cluster.start_worker()

    state = await wait_for_state(cluster.client, rid, number, settled, within=60)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    rec = state.record("t1")
    assert rec.status == TaskStatus.PASSED
    assert len(world.model.requests_for("agent", "t1")) == 2  # steps 0 and 1, once: the retry skipped it
    history = await cluster.client.get_workflow_handle(f"otto/{rid}/{number}").fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert 2 in attempts  # the task's activity did run again, on the second worker
    assert_nothing_twice(sim, r, number, [rec.branch])
    assert [p.updates[0][2] for p in sim.pushes if p.owner == r.owner] == [rec.head_sha]  # pushed once
    assert len([c for c in sim.check_runs(r.owner, r.name, rec.head_sha) if c.name == "otto/verify"]) == 1


async def _eventually_async(check: Callable[[], Any], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await check():
                return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met")


def _bot_comment(sim: Any, r: Repo, number: int) -> str:
    return "\n".join(c.body for c in sim.comments(r.owner, r.name, number) if c.user.login == "otto[bot]")


async def test_temporal_restarted_mid_run_the_run_continues(tmp_path: Path) -> None:
    temporal = EmbeddedTemporal(tmp_path / "temporal")
    address = await temporal.start()
    agents = {
        "t1": [create("a.py", "A = 1\n"), {"text": "Added a.py.", "hold": "t1-finishing"}],
        "t2": [create("b.py", "B = 2\n"), {"text": "Added b.py."}],
    }
    world = LocalWorld.start(tmp_path / "world", scenario(TWO, agents))
    try:
        settings = world.settings(
            tmp_path / "otto",
            address,
            heartbeat_timeout_s=15.0,
            max_parallel_tasks=2,
        )
        client = await connect(address, settings.temporal_namespace)
        async with running_otto(world, settings, client):
            sim = world.sim
            r = new_repo(sim, world.app_id, "restart", dict(SAMPLE_REPO))
            number, rid = label_new_issue(sim, r)
            await wait_for_state(
                client, rid, number, lambda s: bool(s.tasks) and s.record("t1").status == TaskStatus.RUNNING
            )
            await world.model.held("t1-finishing")  # the model call is in flight
            temporal.stop()
            await temporal.start()  # same port, same SQLite file
            world.model.release("t1-finishing")
            state = await wait_for_state(client, rid, number, settled, within=60)
            assert state.phase == RunPhase.WAITING_REVIEW, state.reason
            assert [state.record(t).status for t in ("t1", "t2")] == [TaskStatus.PASSED] * 2
            assert agent_steps(world, "t1", 0) == 1  # the attempt in flight carried on, nothing redone
            assert_nothing_twice(sim, r, number, [state.record(t).branch for t in ("t1", "t2")])
    finally:
        world.stop()
        temporal.stop()


async def test_human_push_during_a_retry_is_kept_and_otto_rebases_onto_it(
    otto: Otto, repo: Callable[..., Repo]
) -> None:
    agents = {
        "t1": [create("tests/test_b.py", "def test_b():\n    assert False\n"), {"text": "Added b's test."}],
        "t1.2": [
            create("tests/test_b.py", "def test_b():\n    assert True\n"),
            {"text": "Fixed test_b.", "hold": "retry-finishing"},
        ],
    }
    otto.world.model.load(scenario(SINGLE, agents))
    r = repo(NO_FIX_ROUNDS)
    number, rid = label_new_issue(otto.sim, r)
    rec = (await wait_for_state(otto.client, rid, number, settled)).record("t1")
    assert rec.status == TaskStatus.FAILED
    pr = pr_of(otto, r, rec.branch)
    otto.sim.comment(r.owner, r.name, pr.number, "/otto retry", r.maintainer)
    await otto.world.model.held("retry-finishing")  # the retry's agent is at work
    human = otto.sim.push_commit(r.owner, r.name, rec.branch, {"NOTES.md": "mine\n"}, "Notes", r.maintainer)
    otto.world.model.release("retry-finishing")

    state = await wait_for_state(
        otto.client,
        rid,
        number,
        lambda s: s.record("t1").attempts == 2 and s.record("t1").status != TaskStatus.RUNNING,
    )
    assert state.record("t1").status == TaskStatus.PASSED, state.record("t1").note
    log = otto.sim.git_log(r.owner, r.name, rec.branch)
    assert log[1].sha == human
    assert "attempt 2" in log[0].message
    assert otto.sim.read_file(r.owner, r.name, rec.branch, "NOTES.md") == "mine\n"
    assert head(otto, r, rec.branch) == state.record("t1").head_sha
    assert_nothing_twice(otto.sim, r, number, [rec.branch])


@pytest.mark.parametrize("status", [429, 500])
async def test_model_error_once_is_retried_and_the_run_completes(
    otto: Otto, repo: Callable[..., Repo], status: int
) -> None:
    first = {**create("a.py", "A = 1\n"), "errors": [{"status": status, "retry_after_ms": 1}]}
    otto.world.model.load(scenario(SINGLE, {"t1": [first, {"text": "Added a.py."}]}))
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    assert state.phase == RunPhase.WAITING_REVIEW
    assert state.record("t1").status == TaskStatus.PASSED
    assert agent_steps(otto.world, "t1", 0) == 2
    assert len(otto.sim.pulls(r.owner, r.name)) == 1


async def test_unparseable_model_output_ends_the_task_visibly(otto: Otto, repo: Callable[..., Repo]) -> None:
    otto.world.model.load(scenario(SINGLE, {"t1": [{"malformed": True}]}))
    r = repo()
    number, rid = label_new_issue(otto.sim, r)
    state = await wait_for_state(otto.client, rid, number, settled)
    rec = state.record("t1")
    assert rec.status == TaskStatus.ERROR, rec.note
    assert "unreadable" in rec.note, rec.note
    assert agent_steps(otto.world, "t1", 0) == 1  # not retried
    assert otto.sim.pulls(r.owner, r.name) == []
    await status_comment(otto, r, number, rec.note[:40])


async def test_a_model_call_that_times_out_is_retried_within_bounds(tmp_path: Path) -> None:
    temporal = EmbeddedTemporal(tmp_path / "temporal")
    address = await temporal.start()
    # the first request for t1's first step hangs (held, never released) past the client's timeout; the
    # SDK's retry is answered
    hang = {**create("a.py", "A = 1\n"), "errors": [{"status": 529, "hold": "hung"}]}
    world = LocalWorld.start(tmp_path / "world", scenario(SINGLE, {"t1": [hang, {"text": "Added a.py."}]}))
    try:
        settings = world.settings(tmp_path / "otto", address, model_timeout_s=1.0)
        client = await connect(address, settings.temporal_namespace)
        async with running_otto(world, settings, client):
            r = new_repo(world.sim, world.app_id, "timeout", dict(SAMPLE_REPO))
            number, rid = label_new_issue(world.sim, r)
            state = await wait_for_state(client, rid, number, settled, within=60)
            assert state.phase == RunPhase.WAITING_REVIEW, state.reason
            assert state.record("t1").status == TaskStatus.PASSED

            # the hung request was never released: the client gave up on it (recorded as not served, the
            # client gone) and its retry was answered
            def first_steps() -> list[tuple[int, str | None]]:
                return sorted(
                    (q.status, q.error_type) for q in world.model.requests_for("agent", "t1") if q.step == 0
                )

            await eventually(lambda: first_steps() == [(200, None), (499, "client_closed")])
            assert world.model.holding("hung") == 0
            assert len(world.sim.pulls(r.owner, r.name)) == 1
    finally:
        world.stop()
        temporal.stop()
