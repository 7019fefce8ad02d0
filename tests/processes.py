"""Otto as real processes, for crash and shutdown tests.

:class:`OttoServe` runs ``otto serve`` (web server + worker, its own embedded Temporal on its own data dir)
wired to a :class:`LocalWorld` (the GitHub simulator's webhooks pointed at it, the scripted model), and can
signal it, SIGKILL it or only its Temporal child, and start it again on the same data dir. What it did is
read where it landed: :func:`side_effects` counts the simulator's writes and the scripted model's requests;
:meth:`OttoServe.leftovers` lists the processes an Otto left behind (its Temporal server, anything whose
command line names its data dir).

    otto = OttoServe(world, tmp_path)
    otto.start()
    await otto.wait_ready()
    client = await otto.client()               # the embedded Temporal, for the run's state
    ...
    otto.kill()                                # SIGKILL, as the OOM killer or a power cut would
    restart_s = await otto.restart()           # same data dir: seconds until /readyz answered 200
    ...
    otto.stop()                                # SIGTERM, then SIGKILL after a bound
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client

from app.dev.local import LocalWorld
from app.engine import connect
from bench.common import VENV_BIN, ManagedProcess, free_port, otto_env


@dataclass(frozen=True)
class SideEffects:
    """What the world saw so far: successful writes to the simulator, requests to the scripted model."""

    pushes: int  # git pushes that updated refs
    check_runs: int  # check runs created
    pulls: int  # pull requests opened
    comments: int  # issue/PR comments posted (edits not counted)
    merges: int  # pull requests merged
    model_requests: int  # requests the scripted model answered or refused


def side_effects(world: LocalWorld) -> SideEffects:
    sim = world.sim
    repo = r"/repos/[^/]+/[^/]+"
    return SideEffects(
        pushes=len(sim.pushes),
        check_runs=sim.count_calls("POST", rf"{repo}/check-runs", status=201),
        pulls=sim.count_calls("POST", rf"{repo}/pulls", status=201),
        comments=sim.count_calls("POST", rf"{repo}/issues/\d+/comments", status=201),
        merges=sim.count_calls("PUT", rf"{repo}/pulls/\d+/merge", status=200),
        model_requests=len(world.model.requests),
    )


def cmdline(pid: int) -> str:
    """A process's command line ("" when it is gone or a zombie)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_mentioning(text: str) -> dict[int, str]:
    """Every live process whose command line contains ``text`` (pid → command line)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            line = cmdline(int(entry.name))
            if text in line:
                found[int(entry.name)] = line
    return found


async def gone(pid: int, within: float = 15.0) -> bool:
    """Whether ``pid`` has exited within ``within`` seconds (a synchronisation bound, not a measurement)."""
    deadline = time.monotonic() + within
    while cmdline(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@dataclass
class OttoServe:
    """``otto serve`` against ``world`` on ``root/otto`` (see the module docstring). ``settings`` are
    ``OTTO_*`` overrides (``shutdown_grace_s=2`` → ``OTTO_SHUTDOWN_GRACE_S=2``)."""

    world: LocalWorld
    root: Path
    settings: dict[str, object] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: ManagedProcess | None = None
    starts: int = 0
    pids: list[int] = field(default_factory=list)  # every Otto process started
    engines: list[int] = field(default_factory=list)  # every embedded Temporal server seen
    started_at: float = 0.0
    port_retries: int = 0
    _client: tuple[int, Client] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "otto"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"otto-{self.starts}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        assert self.proc.process is not None, "not started"
        return self.proc.pid

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None, "not started"
        assert self.proc.process is not None, "not started"
        return self.proc.process

    def start(self) -> OttoServe:
        """Start ``otto serve`` (returns at once; see :meth:`wait_ready`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.proc = ManagedProcess(
            f"otto serve #{self.starts}",
            [str(VENV_BIN / "otto"), "serve"],
            self.log_path,
            env=otto_env(self.world, self.data_dir, "", self.port, **self.settings),
            cwd=self.root,  # no .env is read from the project directory
        )
        self.started_at = time.monotonic()
        self.proc.start()
        self.pids.append(self.pid)
        self.world.sim.set_webhook_url(self.world.app_id, f"{self.url}/webhooks")
        return self

    async def wait_ready(self, within: float = 120.0) -> float:
        """Wait until ``/readyz`` answers 200; seconds since :meth:`start`. Fails if Otto exits first."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                if self.process.poll() is not None:
                    if "Address already in use" in self.log() and self.port_retries < 3:
                        # the port picked was taken meanwhile (e.g. as another connection's source port)
                        self.port_retries += 1
                        self.port = free_port()
                        self.start()
                        continue
                    raise AssertionError(f"otto serve exited with {self.process.returncode}:\n{self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"otto serve not ready within {within} s:\n{self.log()}")
                await asyncio.sleep(0.05)
        took = time.monotonic() - self.started_at
        engine = self.engine_pid
        if engine not in self.engines:
            self.engines.append(engine)
        return took

    async def restart(self, within: float = 120.0) -> float:
        """Start again on the same data dir (the last one must have exited); seconds until ready."""
        assert self.proc is None or not self.proc.alive(), "the previous otto serve still runs"
        self.start()
        return await self.wait_ready(within)

    @property
    def engine_pid(self) -> int:
        """The current embedded Temporal server (its pid file)."""
        return int((self.data_dir / "temporal" / "server.pid").read_text().strip())

    def engine_address(self) -> str:
        args = cmdline(self.engine_pid).split()
        return f"127.0.0.1:{args[args.index('--port') + 1]}"

    async def client(self) -> Client:
        """A Temporal client for the current embedded server (a new one after a restart)."""
        engine = self.engine_pid
        if self._client is None or self._client[0] != engine:
            self._client = (engine, await connect(self.engine_address(), "default"))
        return self._client[1]

    def side_effects(self) -> SideEffects:
        return side_effects(self.world)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL Otto itself (its Temporal child follows by its parent-death signal)."""
        self.signal(signal.SIGKILL)
        self.process.wait()

    def kill_engine(self) -> int:
        """SIGKILL only the embedded Temporal server; its pid."""
        pid = self.engine_pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_exit(self, within: float = 60.0) -> int:
        """Otto's exit code (fails if it is still running after ``within`` seconds)."""
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"otto serve still running after {within} s:\n{self.log()}") from None

    def leftovers(self) -> dict[int, str]:
        """Processes an Otto of this data dir left running: its Temporal servers, its own processes, and
        anything whose command line names the data dir (sandboxed commands, git)."""
        left = processes_mentioning(str(self.data_dir))
        for pid in [*self.pids, *self.engines]:
            line = cmdline(pid)
            if line and ("otto" in line or "temporal" in line):
                left[pid] = line
        return left

    async def no_leftovers(self, within: float = 15.0) -> dict[int, str]:
        """:meth:`leftovers` once they are gone, or what is still there after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            left = self.leftovers()
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after a bound; then whatever was left behind is killed (test clean-up)."""
        if self.proc is not None:
            self.proc.stop(timeout=30)
        self.world.sim.set_webhook_url(self.world.app_id, None)
        for pid in self.leftovers():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
