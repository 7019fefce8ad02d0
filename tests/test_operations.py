"""Operator-facing behaviour of real Otto processes: graceful shutdown on SIGTERM/SIGINT (``otto serve``,
``otto web``, ``otto worker``), Otto stopping when its embedded engine dies, and ``otto serve`` SIGKILLed
and restarted on the same data dir. Every test checks that nothing Otto started is left running.

The bounds below are synchronisation bounds (how long to wait before calling it a failure), set well above
what the shutdown promises (``OTTO_SHUTDOWN_GRACE_S`` + 10 s); the measured times are in
``python -m bench ops``."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.dev.demo import SAMPLE_REPO
from app.dev.local import LocalWorld
from app.domain.run import RunPhase, TaskStatus
from app.engine import EmbeddedTemporal
from app.intake import sign
from app.lifecycle import SHUTDOWN_MARGIN_S
from bench.common import VENV_BIN, ManagedProcess, free_port, otto_env
from tests.e2e import eventually, label_new_issue, settled, wait_for_state
from tests.processes import OttoServe, cmdline, gone, processes_mentioning
from tests.test_failures_e2e import SINGLE, create, scenario
from tests.test_faults import new_repo

GRACE_S = 3.0
EXIT_BOUND_S = GRACE_S + SHUTDOWN_MARGIN_S + 15  # what the watchdog guarantees, plus a slow machine's slack
ONE_TASK = scenario(SINGLE, {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}]})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[LocalWorld]:
    w = LocalWorld.start(tmp_path / "world", ONE_TASK)
    yield w
    w.stop()


@pytest.fixture
def otto(world: LocalWorld, tmp_path: Path) -> Iterator[OttoServe]:
    o = OttoServe(world, tmp_path, {"shutdown_grace_s": GRACE_S, "heartbeat_timeout_s": 5.0})
    yield o
    o.stop()


# --- otto serve: graceful shutdown ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_stops_on_a_signal_exits_0_and_leaves_nothing(otto: OttoServe, sig: int) -> None:
    otto.start()
    await otto.wait_ready()
    engine = otto.engine_pid
    assert "start-dev" in cmdline(engine)
    assert str(otto.data_dir) in cmdline(engine)

    otto.signal(sig)
    assert otto.wait_exit(EXIT_BOUND_S) == 0, otto.log()
    assert await gone(engine), "the embedded Temporal server outlived Otto"
    assert await otto.no_leftovers() == {}
    log = otto.log()
    assert f"shutting down: {signal.Signals(sig).name} received" in log
    assert '"level": "ERROR"' not in log
    assert not (otto.data_dir / "temporal" / "server.pid").exists()  # stopped by Otto, not orphaned


async def test_serve_signalled_while_starting_stops_what_it_started(otto: OttoServe) -> None:
    otto.start()
    await eventually(lambda: (otto.data_dir / "temporal" / "server.pid").exists(), within=60)
    engine = otto.engine_pid  # Temporal is starting (or just started); Otto is not serving yet
    otto.signal(signal.SIGTERM)
    assert otto.wait_exit(EXIT_BOUND_S) == 0, otto.log()
    assert await gone(engine)
    assert await otto.no_leftovers() == {}


async def test_serve_sigterm_while_a_check_runs_hands_the_attempt_back(
    otto: OttoServe, world: LocalWorld
) -> None:
    """The task's check (sandboxed) outlasts the grace period: it is killed, the attempt is handed back
    to Temporal, and the restarted Otto finishes the run without redoing what was pushed."""
    otto.start()
    await otto.wait_ready()
    slow = {**SAMPLE_REPO, ".github/otto.yml": "verify: sleep 6 && python -m pytest -q\n"}
    r = new_repo(world.sim, world.app_id, "handback", slow)
    number, rid = label_new_issue(world.sim, r)
    check = await eventually(lambda: _sandboxed(otto, "sleep 6"), within=120)

    otto.signal(signal.SIGTERM)
    assert otto.wait_exit(EXIT_BOUND_S) == 0, otto.log()
    assert await otto.no_leftovers() == {}, "a sandboxed command outlived Otto"
    assert all(not cmdline(pid) for pid in check)
    log = otto.log()
    # the cancelled attempt kills its own command (the shutdown's last sweep finds nothing left)
    assert "killed 1 sandboxed command(s) of a cancelled attempt" in log
    agent_requests = len(world.model.requests_for("agent", "t1"))

    await otto.restart()
    state = await wait_for_state(await otto.client(), rid, number, settled, within=120)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    assert state.record("t1").status == TaskStatus.PASSED
    assert len(world.model.requests_for("agent", "t1")) == agent_requests  # resumed after the agent
    history = await (await otto.client()).get_workflow_handle(f"otto/{rid}/{number}").fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert 2 in attempts, attempts  # the attempt handed back was retried by the restarted Otto
    assert len(world.sim.pulls(r.owner, r.name)) == 1
    pushed = [u[2] for p in world.sim.pushes if p.owner == r.owner for u in p.updates]
    assert pushed == [state.record("t1").head_sha]  # pushed once


async def test_serve_sigterm_lets_a_running_attempt_finish_within_the_grace(
    world: LocalWorld, tmp_path: Path
) -> None:
    """With grace to spare, the attempt running at SIGTERM finishes (pushed, PR opened) before Otto exits;
    the restarted Otto carries the run on without running the attempt again."""
    otto = OttoServe(world, tmp_path, {"shutdown_grace_s": 60.0})
    try:
        otto.start()
        await otto.wait_ready()
        r = new_repo(world.sim, world.app_id, "finish", dict(SAMPLE_REPO))
        world.model.load(
            scenario(
                SINGLE, {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py.", "hold": "finishing"}]}
            )
        )
        number, rid = label_new_issue(world.sim, r)
        await world.model.held("finishing", within=120)  # the attempt is in the middle of its last step

        otto.signal(signal.SIGTERM)
        await eventually(lambda: "shutting down: SIGTERM received" in otto.log())
        world.model.release("finishing")  # the attempt finishes within the grace
        assert otto.wait_exit(60 + SHUTDOWN_MARGIN_S + 15) == 0, otto.log()
        assert await otto.no_leftovers() == {}
        assert len(world.sim.pulls(r.owner, r.name)) == 1  # the attempt finished before the exit
        assert [q.step for q in world.model.requests_for("agent", "t1")] == [0, 1]

        await otto.restart()
        state = await wait_for_state(await otto.client(), rid, number, settled, within=120)
        assert state.phase == RunPhase.WAITING_REVIEW, state.reason
        assert [q.step for q in world.model.requests_for("agent", "t1")] == [0, 1]  # not run again
        assert len(world.sim.pulls(r.owner, r.name)) == 1
    finally:
        otto.stop()


async def test_serve_a_second_signal_stops_at_once(world: LocalWorld, tmp_path: Path) -> None:
    """A second signal does not wait out the grace period: running activities are cancelled, their
    commands killed, and Otto exits 1 with nothing left running."""
    otto = OttoServe(world, tmp_path, {"shutdown_grace_s": 600.0})
    try:
        otto.start()
        await otto.wait_ready()
        slow = {**SAMPLE_REPO, ".github/otto.yml": "verify: sleep 600\n"}
        r = new_repo(world.sim, world.app_id, "twice", slow)
        label_new_issue(world.sim, r)
        await eventually(lambda: _sandboxed(otto, "sleep 600"), within=120)
        otto.signal(signal.SIGTERM)
        await eventually(lambda: "shutting down: SIGTERM received" in otto.log())
        otto.signal(signal.SIGINT)
        assert otto.wait_exit(SHUTDOWN_MARGIN_S + 30) == 1, otto.log()  # far less than the 600 s of grace
        assert await otto.no_leftovers() == {}
        assert "SIGINT received again: stopping now" in otto.log()
    finally:
        otto.stop()


def _sandboxed(otto: OttoServe, text: str) -> dict[int, str]:
    """Sandboxed commands of this Otto whose command line contains ``text``."""
    return {pid: line for pid, line in processes_mentioning(str(otto.data_dir)).items() if text in line}


# --- otto serve: its engine dies ----------------------------------------------------------------------


async def test_serve_exits_nonzero_when_its_engine_dies(otto: OttoServe) -> None:
    otto.start()
    await otto.wait_ready()
    engine = otto.kill_engine()  # as the OOM killer would
    code = otto.wait_exit(EXIT_BOUND_S)
    assert code != 0, otto.log()
    assert await gone(engine)
    assert await otto.no_leftovers() == {}
    errors = [line for line in otto.log().splitlines() if '"level": "ERROR"' in line]
    assert len(errors) == 1, errors
    assert "the embedded Temporal dev server exited" in errors[0], errors


# --- otto serve: SIGKILL and restart on the same data dir -------------------------------------------


async def test_serve_sigkilled_while_idle_restarts_and_the_run_survives(
    otto: OttoServe, world: LocalWorld
) -> None:
    otto.start()
    await otto.wait_ready()
    r = new_repo(world.sim, world.app_id, "crash", dict(SAMPLE_REPO))
    number, rid = label_new_issue(world.sim, r)
    state = await wait_for_state(await otto.client(), rid, number, settled, within=120)
    assert state.phase == RunPhase.WAITING_REVIEW, state.reason
    await eventually(lambda: "waiting for your review" in _bot_comment(world, r.owner, number))
    before = otto.side_effects()
    engine = otto.engine_pid

    otto.kill()
    await otto.restart()  # at once, as a supervisor would: the old server may still be on its way out
    assert "in use" not in otto.log()
    assert otto.engine_pid != engine
    assert await gone(engine), "the embedded Temporal server outlived a SIGKILLed Otto"

    pr = world.sim.pulls(r.owner, r.name)[0]
    world.sim.submit_review(r.owner, r.name, pr.number, r.maintainer, "APPROVED")
    await eventually(lambda: world.sim.pull(r.owner, r.name, pr.number).merged, within=120)
    after = await eventually(lambda: (e := otto.side_effects()).merges == before.merges + 1 and e)
    assert (after.pushes, after.pulls, after.check_runs) == (before.pushes, before.pulls, before.check_runs)
    done = await wait_for_state(await otto.client(), rid, number, lambda s: s.phase.final, within=120)
    assert done.phase == RunPhase.DONE
    assert done.record("t1").status == TaskStatus.MERGED
    assert after.model_requests == before.model_requests  # nothing of the run was asked again
    otto.signal(signal.SIGTERM)
    assert otto.wait_exit(EXIT_BOUND_S) == 0
    assert await otto.no_leftovers() == {}


def _bot_comment(world: LocalWorld, owner: str, number: int) -> str:
    return "\n".join(
        c.body for c in world.sim.comments(owner, "greeter", number) if c.user.login == "otto[bot]"
    )


# --- otto web and otto worker against a separate Temporal -------------------------------------------


@pytest.fixture
async def temporal(tmp_path: Path) -> AsyncIterator[str]:
    server = EmbeddedTemporal(tmp_path / "temporal")
    address = await server.start()
    yield address
    await asyncio.to_thread(server.stop)


def _process(world: LocalWorld, root: Path, address: str, command: str, **settings: Any) -> ManagedProcess:
    port = free_port()
    proc = ManagedProcess(
        f"otto {command}",
        [str(VENV_BIN / "otto"), command],
        root / f"{command}.log",
        env=otto_env(world, root / command, address, port, shutdown_grace_s=GRACE_S, **settings),
        cwd=root,
    )
    proc.env_port = port  # type: ignore[attr-defined]
    return proc.start()


async def _wait_log(proc: ManagedProcess, text: str, within: float = 60.0) -> None:
    await eventually(lambda: text in proc.log_path.read_text(), within=within)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_worker_stops_on_a_signal(world: LocalWorld, temporal: str, tmp_path: Path, sig: int) -> None:
    proc = _process(world, tmp_path, temporal, "worker")
    try:
        await _wait_log(proc, "running: the worker on otto")
        assert proc.process is not None
        proc.process.send_signal(sig)
        assert proc.process.wait(EXIT_BOUND_S) == 0, proc.log_tail(40)
        assert processes_mentioning(str(tmp_path / "worker")) == {}
        assert f"shutting down: {signal.Signals(sig).name} received" in proc.log_tail(40)
    finally:
        proc.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_web_finishes_the_request_in_flight_refuses_new_ones_and_exits_0(
    world: LocalWorld, temporal: str, tmp_path: Path, sig: int
) -> None:
    proc = _process(world, tmp_path, temporal, "web")
    port: int = proc.env_port  # type: ignore[attr-defined]
    try:
        await _wait_log(proc, "running: the web server")
        await eventually(lambda: _accepts(port), within=60)
        body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
        head = (
            f"POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: ping\r\nX-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\r\n"
            f"X-Hub-Signature-256: {sign(world.webhook_secret, body)}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.sendall(head + body[:10])  # a delivery half received
        assert proc.process is not None
        proc.process.send_signal(sig)
        await _wait_log(proc, "shutting down")
        await eventually(lambda: not _accepts(port), within=30)  # no new connections meanwhile
        sock.sendall(body[10:])
        answer = sock.recv(4096)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 202"), answer
        assert proc.process.wait(EXIT_BOUND_S) == 0, proc.log_tail(40)
        assert processes_mentioning(str(tmp_path / "web")) == {}
    finally:
        proc.stop()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# --- the bound -----------------------------------------------------------------------------------------

HANGING_SERVICE = """
import subprocess, sys, time
from app.lifecycle import run_service

async def main(shutdown):
    child = subprocess.Popen(["sleep", "300"])
    print(child.pid, flush=True)
    shutdown.serving = True
    await shutdown.wait()
    time.sleep(300)  # a shutdown that never ends (blocking the event loop, so no signal is handled)

sys.exit(run_service(main, 0.5))
"""


async def test_a_shutdown_that_hangs_is_cut_off_and_what_it_started_is_killed() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HANGING_SERVICE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        child = int(await proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 0.5 + SHUTDOWN_MARGIN_S + 20) == 1
        assert await gone(child), "the watchdog left the service's child running"
        assert b"shutdown did not finish within 10.5 s" in await proc.stderr.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
