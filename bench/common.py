"""Shared pieces of the benchmarks: tables and verdicts, managed subprocesses, the local world, Otto as a
separate process, Temporal, process-tree memory, the scripted model's timing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.contracts.ids import run_workflow_id

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".cache" / "bench"
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------------------------- output


def say(text: str = "") -> None:
    print(text, flush=True)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A small fixed-width table; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    say(f"\n{title}")
    say(
        "  "
        + "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    say("  " + "  ".join("-" * w for w in widths))
    for row in cells:
        say(
            "  "
            + "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def verdict(ok: bool, reason: str) -> str:
    return "met" if ok else f"MISSED ({reason})"


def targets(rows: Sequence[tuple[str, str, str, str]]) -> None:
    """Rows of (what, target, measured, verdict)."""
    table("Targets", ["figure", "target", "measured", "verdict"], rows)


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def mib(n: int | None) -> float | None:
    return None if n is None else n / (1024 * 1024)


# --------------------------------------------------------------------------------------------- running


def bench_dir(name: str) -> Path:
    """A fresh scratch directory for one benchmark run under ``.cache/bench/runs``."""
    path = CACHE / "runs" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            one, five, *_rest = f.read().split()
        return f"load average {one} (1 min), {five} (5 min) on {os.cpu_count()} CPUs"
    except OSError:
        return f"{os.cpu_count()} CPUs"


@dataclass(frozen=True)
class DiskSample:
    """One reading of ``/proc/diskstats`` for the block device under a path."""

    device: str
    fs_type: str
    read_bytes: int
    written_bytes: int
    busy_ms: int
    at: float


def disk_sample(path: Path) -> DiskSample | None:
    """The counters of the device ``path`` lives on (None where /proc doesn't say: e.g. an overlay)."""
    try:
        dev = os.stat(path).st_dev
        major, minor = os.major(dev), os.minor(dev)
        fs_type, best = "?", ""
        with open("/proc/mounts") as f:
            for line in f:
                _src, mount, kind, *_ = line.split()
                if (str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount) and len(mount) > len(
                    best
                ):
                    best, fs_type = mount, kind
        with open("/proc/diskstats") as f:
            for line in f:
                fields = line.split()
                if int(fields[0]) == major and int(fields[1]) == minor:
                    return DiskSample(
                        device=fields[2],
                        fs_type=fs_type,
                        read_bytes=int(fields[5]) * 512,
                        written_bytes=int(fields[9]) * 512,
                        busy_ms=int(fields[12]),
                        at=time.monotonic(),
                    )
    except (OSError, ValueError, IndexError):
        return None
    return None


def disk_activity(before: DiskSample | None, after: DiskSample | None) -> str:
    """What the device did between two samples (all processes on the machine, not only ours)."""
    if before is None or after is None:
        return "disk: no counters for this path"
    span = max(after.at - before.at, 1e-9)
    busy = (after.busy_ms - before.busy_ms) / 1000 / span * 100
    return (
        f"disk {before.device} ({before.fs_type}) over {span:.0f}s: "
        f"{(after.read_bytes - before.read_bytes) / 2**20:,.0f} MiB read, "
        f"{(after.written_bytes - before.written_bytes) / 2**20:,.0f} MiB written, "
        f"busy {busy:.0f}% of the time"
    )


def load_one() -> float | None:
    """The 1-minute load average."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run_main(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run an async benchmark; SIGTERM becomes KeyboardInterrupt so every ``finally`` cleans up."""
    say(f"Machine before: {load_average()}")

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        code = asyncio.run(main())
        say(f"Machine after: {load_average()} (other work on the machine skews every figure)")
        return code
    except KeyboardInterrupt:
        say("\ninterrupted; everything started was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ManagedProcess:
    """A child process with its output in a log file; ``stop`` terminates it (then kills) and waits."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_http(url: str, proc: ManagedProcess, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers anything (the process must stay alive meanwhile)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited early; its log ends:\n{proc.log_tail()}")
            try:
                await client.get(url)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{proc.name} did not answer on {url}:\n{proc.log_tail()}") from None
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def embedded_temporal(root: Path) -> AsyncIterator[tuple[str, int]]:
    """Temporal's dev server (Otto's own embedding), stopped on exit: (address, pid)."""
    from app.engine import EmbeddedTemporal

    server = EmbeddedTemporal(root)
    try:
        address = await server.start()
        assert server.process is not None
        yield address, server.process.pid
    finally:
        await asyncio.to_thread(server.stop)


# --------------------------------------------------------------------------------------------- memory

_PAGE = os.sysconf("SC_PAGE_SIZE")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


@dataclass
class RssSampler:
    """Samples, in a thread, the RSS of named process trees; keeps each tree's peak (sum over its
    processes; shared pages are counted once per process, so this over-states slightly)."""

    roots: dict[str, int]
    interval_s: float = 0.2
    peaks: dict[str, int] = field(default_factory=dict)
    peak_root_only: dict[str, int] = field(default_factory=dict)
    peak_processes: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for name, root in self.roots.items():
            pids = descendants(root)
            total = sum(rss_of(p) for p in pids)
            self.peaks[name] = max(self.peaks.get(name, 0), total)
            self.peak_root_only[name] = max(self.peak_root_only.get(name, 0), rss_of(root))
            self.peak_processes[name] = max(self.peak_processes.get(name, 0), len(pids))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()


# --------------------------------------------------------------------------------------------- world


@dataclass
class ModelCall:
    role: str
    key: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


class TimedModel:
    """ASGI wrapper around the scripted model: server-side time of every ``POST /v1/messages``, by role
    and key (the body is captured as the app reads it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls: list[ModelCall] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/v1/messages":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def capture() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        start = time.perf_counter()
        try:
            await self.app(scope, capture, send)
        finally:
            end = time.perf_counter()
            from app.dev.fake_llm import identify

            try:
                role, key, _step = identify(json.loads(b"".join(chunks)))
            except ValueError:
                role, key = "?", "?"
            with self._lock:
                self.calls.append(ModelCall(role, key, start, end))

    def seconds_by_key(self, role: str | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        with self._lock:
            for c in self.calls:
                if role is None or c.role == role:
                    out[c.key] = out.get(c.key, 0.0) + c.seconds
        return out


def start_world(root: Path, scenario: Mapping[str, Any] | Path | None) -> tuple[Any, TimedModel]:
    """``LocalWorld.start`` with the scripted model wrapped in :class:`TimedModel`."""
    from app.dev.local import LocalWorld

    timed: list[TimedModel] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        timed.append(TimedModel(app))
        return timed[0]

    world = LocalWorld.start(root, scenario, wrap_model=wrap)
    return world, timed[0]


def otto_env(
    world: Any, data_dir: Path, temporal_address: str, port: int, **overrides: object
) -> dict[str, str]:
    """The environment of an ``otto serve`` process wired to the local world (nothing inherited that
    could point Otto elsewhere)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTTO_", "ANTHROPIC_", "GITHUB_")) and k not in ("HTTP_PROXY", "HTTPS_PROXY")
    }
    env.update(
        {
            "NO_PROXY": "*",
            "OTTO_GITHUB_APP_ID": str(world.app_id),
            "OTTO_GITHUB_PRIVATE_KEY": world.private_key_pem,
            "OTTO_WEBHOOK_SECRET": world.webhook_secret,
            "OTTO_GITHUB_API_URL": f"{world.sim_server.url}/api/v3",
            "OTTO_GITHUB_GRAPHQL_URL": f"{world.sim_server.url}/api/graphql",
            "ANTHROPIC_API_KEY": world.model_api_key,
            "ANTHROPIC_BASE_URL": world.model_server.url,
            "OTTO_MODEL_MAX_RETRIES": "2",
            "OTTO_TEMPORAL_ADDRESS": temporal_address,
            "OTTO_DATA_DIR": str(data_dir),
            "OTTO_HOST": LOOPBACK,
            "OTTO_PORT": str(port),
            "OTTO_SANDBOX_TOOLS": json.dumps([str(t) for t in world.sandbox_tools]),
        }
    )
    for k, v in overrides.items():
        env[f"OTTO_{k.upper()}"] = json.dumps(v) if isinstance(v, list) else str(v)
    return env


@contextlib.asynccontextmanager
async def otto_process(
    world: Any, root: Path, temporal_address: str, **overrides: object
) -> AsyncIterator[tuple[ManagedProcess, str]]:
    """``otto serve`` (web server + worker in one process) as a child process, webhooks pointed at it."""
    port = free_port()
    data_dir = root / "otto"
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        "otto serve",
        [str(VENV_BIN / "otto"), "serve", "--log-level", "warning"],
        root / "otto.log",
        env=otto_env(world, data_dir, temporal_address, port, **overrides),
        cwd=root,  # no .env is read from the project directory
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        proc.start()
        await wait_http(f"{url}/healthz", proc)
        world.sim.set_webhook_url(world.app_id, f"{url}/webhooks")
        yield proc, url
    finally:
        world.sim.set_webhook_url(world.app_id, None)
        await asyncio.to_thread(proc.stop)


@contextlib.contextmanager
def local_world(root: Path, scenario: Mapping[str, Any] | Path | None) -> Iterator[tuple[Any, TimedModel]]:
    world, timed = start_world(root, scenario)
    try:
        yield world, timed
    finally:
        world.stop()


async def run_state(client: Any, repo_id: int, number: int) -> Any:
    from app.workflows.run import RunWorkflow

    handle = client.get_workflow_handle_for(RunWorkflow.run, run_workflow_id(repo_id, number))
    return await handle.query(RunWorkflow.status)


async def wait_settled(client: Any, repo_id: int, numbers: Sequence[int], within_s: float) -> dict[int, Any]:
    """Poll the runs until each is waiting for review or final (or time is up); the last state seen."""
    from app.domain.run import RunPhase

    states: dict[int, Any] = {}
    pending = set(numbers)
    deadline = time.monotonic() + within_s
    while pending and time.monotonic() < deadline:
        for n in sorted(pending):
            try:
                state = await run_state(client, repo_id, n)
            except Exception:  # not started yet  # noqa: S112
                continue
            states[n] = state
            if state.phase == RunPhase.WAITING_REVIEW or state.phase.final:
                pending.discard(n)
        if pending:
            await asyncio.sleep(0.25)
    return states
