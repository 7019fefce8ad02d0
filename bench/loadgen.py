"""C load generators for the intake benchmark, and what each run cost the machine.

- ``wrk`` (closed loop: N connections, each sends its next request when the last is answered) for
  throughput at saturation. A Lua script sends one pre-signed body with fixed headers (GitHub signs only
  the body, so a per-request ``X-GitHub-Delivery`` keeps the signature valid) and prints its exact counts
  and latency percentiles as JSON.
- ``h2load --rps`` (from nghttp2: a constant request rate per connection) for latency at fixed rates. Its
  per-request log gives every latency; how far the sends fell behind the constant-rate schedule is
  computed from it and reported (a connection whose answer is late sends its next request late: when
  that happens the latency figures under-state, and the "behind" column says by how much).

Both are Debian packages (``wrk``, ``nghttp2-client``), installed with apt-get when missing and running as
root. Each run's generator CPU time (user + system, from ``wait4``) is measured so a reader can see the
generator was not the bottleneck; machine load and CPU steal over the run come from /proc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import percentile, say

WRK_SCRIPT = """
wrk.method = "POST"
local f = assert(io.open(os.getenv("OTTO_BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
local prefix = os.getenv("OTTO_BENCH_DELIVERY_PREFIX")
if prefix then
  local n = 0
  request = function()
    n = n + 1
    wrk.headers["X-GitHub-Delivery"] = prefix .. n
    return wrk.format()
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'OTTO_BENCH {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


class ToolMissing(RuntimeError):
    pass


SERVER_CPU, GENERATOR_CPU = 1, 0


def pinned(cpu: int) -> list[str]:
    """An argv prefix running a program (all its threads) on one CPU, so that a server and its load
    generator don't take each other's CPU (and a multi-threaded server gets no more CPU than one core);
    nothing when the machine has one CPU or no ``taskset``."""
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def ensure_tool(binary: str, package: str) -> str:
    """The path of ``binary``; installs Debian's ``package`` first when it is missing and we are root."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ToolMissing(f"`{binary}` is missing: install the Debian package {package!r}")
    say(f"  installing {package} with apt-get …")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", package]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600, check=True)
    found = shutil.which(binary)
    if not found:
        raise ToolMissing(f"`{binary}` still missing after installing {package}")
    return found


# --------------------------------------------------------------------------------------------- machine


def load1() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def _cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies over all CPUs, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


@dataclass
class Machine:
    """Load average at the end and the CPU share stolen by the hypervisor over a run."""

    load1: float = 0.0
    steal_pct: float = 0.0

    @classmethod
    def during(cls, before: tuple[int, int]) -> Machine:
        steal, total = _cpu_times()
        span = total - before[1]
        return cls(load1(), 100.0 * (steal - before[0]) / span if span > 0 else 0.0)


def machine_mark() -> tuple[int, int]:
    return _cpu_times()


# --------------------------------------------------------------------------------------------- running


def _run_measured(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str, float, float]:
    """Run ``argv``; (exit code, output, its CPU seconds, wall seconds)."""
    started = time.perf_counter()
    with (
        tempfile.TemporaryFile() as out,
        subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        ) as proc,
    ):
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return proc.returncode, text, usage.ru_utime + usage.ru_stime, time.perf_counter() - started


def header_args(headers: dict[str, str]) -> list[str]:
    return [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]


@dataclass
class Saturation:
    """One wrk run."""

    target: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    generator_cpu_s: float
    server_cpu_s: float = 0.0
    temporal_cpu_s: float = 0.0
    machine: Machine = field(default_factory=Machine)

    @property
    def server_ms_per_request(self) -> float | None:
        return self.server_cpu_s * 1000 / self.requests if self.requests else None

    @property
    def generator_cores(self) -> float:
        return self.generator_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.seconds if self.seconds else 0.0


def wrk(
    target: str,
    url: str,
    body: Path,
    headers: dict[str, str],
    connections: int,
    duration_s: float,
    delivery_prefix: str | None = None,
) -> Saturation:
    """``wrk -t1 -c<connections> -d<duration>`` POSTing ``body``; per-request delivery ids with a prefix."""
    binary = ensure_tool("wrk", "wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    env = {**os.environ, "OTTO_BENCH_BODY": str(body)}
    if delivery_prefix is not None:
        env["OTTO_BENCH_DELIVERY_PREFIX"] = delivery_prefix
    argv = [
        *pinned(GENERATOR_CPU),
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "10s",
    ]
    argv += ["-s", script.name]
    argv += [*header_args(headers), url]
    try:
        code, out, cpu, _wall = _run_measured(argv, env, duration_s + 30)
    finally:
        os.unlink(script.name)
    line = next((ln for ln in out.splitlines() if ln.startswith("OTTO_BENCH ")), None)
    if code != 0 or line is None:
        raise RuntimeError(f"wrk failed ({code}):\n{out[-2000:]}")
    r = json.loads(line.removeprefix("OTTO_BENCH "))
    seconds = r["duration_us"] / 1e6
    return Saturation(
        target=target,
        requests=r["requests"],
        seconds=seconds,
        rps=r["requests"] / seconds if seconds else 0.0,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        non_2xx=r["status"],
        socket_errors=r["connect"] + r["read"] + r["write"] + r["timeout"],
        generator_cpu_s=cpu,
    )


@dataclass
class FixedRate:
    """One h2load run at a constant offered rate."""

    target: str
    offered: float
    seconds: float
    started: int
    done: int
    statuses: Counter[int]
    latencies_ms: list[float]
    behind_ms: float  # how far the sends fell behind the constant-rate schedule, at worst
    generator_cpu_s: float
    expect: int = 200
    server_cpu_s: float = 0.0
    machine: Machine = field(default_factory=Machine)

    @property
    def achieved(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    errors: int = 0  # errored or timed out (no answer)

    @property
    def unexpected(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != self.expect) + self.errors

    def p(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)

    @property
    def generator_cores(self) -> float:
        return self.generator_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def server_ms_per_request(self) -> float | None:
        return self.server_cpu_s * 1000 / self.done if self.done else None


def h2load(
    target: str,
    url: str,
    body: Path,
    headers: dict[str, str],
    rate: float,
    clients: int,
    duration_s: float,
    expect: int,
) -> FixedRate:
    """``h2load --h1 -c<clients> --rps <rate/clients>``, ``rate × duration`` requests, every one logged.

    The connections are opened one every ``1/rate`` s (at least 1 ms: ``-r 1 --rate-period``), so that
    their per-connection timers are out of phase and the sends add up to an even stream; opened all at
    once (``-D``), the timers fire together and the server gets bursts of ``clients`` requests, which
    measures the burst, not the rate."""
    binary = ensure_tool("h2load", "nghttp2-client")
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    period_ms = max(1, round(1000 / rate))
    count = max(clients, round(rate * duration_s))
    argv = [*pinned(GENERATOR_CPU), binary, "--h1", f"-c{clients}", f"--rps={rate / clients:.4f}"]
    argv += [f"-n{count}", "-r1", f"--rate-period={period_ms}ms"]
    argv += ["-d", str(body), f"--log-file={log_path}", *header_args(headers), url]
    try:
        code, out, cpu, _wall = _run_measured(argv, dict(os.environ), duration_s * 3 + 30)
        rows = [ln.split("\t") for ln in log_path.read_text().splitlines() if ln.strip()]
    finally:
        log_path.unlink(missing_ok=True)
    if code != 0:
        raise RuntimeError(f"h2load failed ({code}):\n{out[-2000:]}")
    counts: dict[str, int] = {}
    for ln in out.splitlines():
        if ln.startswith("requests:"):  # requests: N total, N started, N done, N succeeded, N failed, ...
            counts = {
                kind.strip(): int(n) for n, kind in (p.strip().split(" ", 1) for p in ln[9:].split(","))
            }
    starts = sorted(int(r[0]) for r in rows)
    behind = 0.0
    ramp_us = clients * period_ms * 1000  # connections still opening: fewer senders, on purpose
    steady = [t for t in starts if starts and t >= starts[0] + ramp_us]
    if steady:
        t0 = steady[0]
        behind = max((t - t0) / 1e6 - i / rate for i, t in enumerate(steady))
    seconds = (starts[-1] - starts[0]) / 1e6 if len(starts) > 1 else duration_s
    return FixedRate(
        target=target,
        offered=rate,
        seconds=seconds,
        started=counts.get("started", 0),
        done=counts.get("done", 0),
        errors=counts.get("errored", 0) + counts.get("timeout", 0),
        statuses=Counter(int(r[1]) for r in rows),
        latencies_ms=[int(r[2]) / 1000 for r in rows],
        behind_ms=max(0.0, behind) * 1000,
        generator_cpu_s=cpu,
        expect=expect,
    )
