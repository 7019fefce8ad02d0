"""Webhook intake: Otto's web process (``otto web``, one process) side by side with a minimal Probot app.

(a) Ignored deliveries: signed ``issues.labeled`` with a label that is not the trigger, which both servers
    verify, parse, route and ignore (Otto answers 202, Probot 200).
    - Throughput at saturation: ``wrk`` (C, 1 thread, 32 connections), both servers in the same run in
      alternating rounds (A B, B A, A B …).
    - Latency at fixed rates: ``h2load --rps`` (C, constant rate per connection) at a quarter and a half
      of Probot's measured peak, both servers alternating.
(b) Run-starting deliveries (``issues.labeled`` with the trigger label, from a human), each answered only
    once Temporal durably accepted its ``DeliveryWorkflow`` (no worker runs: a delivery only has to be
    accepted).
    - Sustained rate: ``wrk`` with 16 connections and a fresh ``X-GitHub-Delivery`` per request, against
      the raw ``client.start_workflow`` rate of the same Temporal dev server (the same workflow, input and
      data converter, 16 in flight, from this process), alternating rounds.
    - Latency at 50/s: this process's Python open-loop generator (well below its own saturation; its
      schedule lag is reported), with 20% redeliveries of already accepted ids (each must answer 200).
(c) The incident that made the intake bounded: 40 clients each declare a 25 MiB body, send 20 MiB and
    stall; ``otto web``'s memory before, at its peak and after they were all answered.

Each server runs pinned to CPU 1 and the C generators to CPU 0 (``taskset``), so neither takes the other's
core and a multi-threaded server gets no more than one core. The generators' own CPU time is printed next
to every figure, with the servers' CPU per request, the 1-minute load average and the CPU share the
hypervisor stole during the run: all of it shares one small machine, so read the ratios, not the absolute
numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shutil
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.contracts.messages import StartRun
from bench import loadgen
from bench.common import (
    CACHE,
    LOOPBACK,
    VENV_BIN,
    ManagedProcess,
    bench_dir,
    cpu_seconds,
    embedded_temporal,
    free_port,
    mib,
    ms,
    percentile,
    rss_of,
    run_main,
    say,
    table,
    targets,
    verdict,
    wait_http,
)

TRIGGER = "otto"
PROBOT_DIR = CACHE / "probot"
REQUEST_TIMEOUT_S = 10.0  # GitHub waits at most 10 s for an answer
WRK_CONNECTIONS = 32
TRIGGER_CONNECTIONS = 16
H2LOAD_CLIENTS = 64


# --------------------------------------------------------------------------------------------- payloads


@dataclass
class Payloads:
    secret: str
    ignored: bytes  # issues.labeled, not the trigger label
    trigger: bytes  # issues.labeled with the trigger label, by a writer
    private_key_pem: str


def build_payloads(root: Path) -> Payloads:
    """Real payloads from the GitHub simulator (its webhook URL unset, so they are only recorded)."""
    from app.dev.local import new_private_key
    from app.dev.simulator import Simulator

    secret = os.urandom(16).hex()
    private_pem, public_pem = new_private_key()
    sim = Simulator(root / "github")
    try:
        sim.register_app(4242, "otto", public_pem, webhook_url=None, webhook_secret=secret)
        sim.create_user("octo-org", type="Organization")
        sim.create_user("mona")
        sim.create_repo("octo-org", "greeter", {"README.md": "# greeter\n"})
        sim.set_permission("octo-org", "greeter", "mona", "write")
        sim.install_app(4242, "octo-org")
        number = sim.create_issue(
            "octo-org", "greeter", "Add a shout mode", "Loud greetings, please.", "mona"
        )
        labeled_other = sim.add_label("octo-org", "greeter", number, "enhancement", "mona")
        labeled_trigger = sim.add_label("octo-org", "greeter", number, TRIGGER, "mona")
    finally:
        sim.close()
    return Payloads(secret, labeled_other.body, labeled_trigger.body, private_pem)


def headers_for(secret: str, event: str, body: bytes, delivery: str) -> dict[str, str]:
    from app.intake import sign

    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret, body),
    }


# --------------------------------------------------------------------------------------------- servers


def install_probot() -> Path:
    """``npm install --no-audit --no-fund probot`` into ``.cache/bench/probot`` (once); the app file."""
    PROBOT_DIR.mkdir(parents=True, exist_ok=True)
    package = PROBOT_DIR / "package.json"
    if not package.exists():
        package.write_text('{"name": "otto-bench-probot", "private": true, "type": "module"}\n')
    if not (PROBOT_DIR / "node_modules" / "probot" / "package.json").exists():
        say("  installing probot with npm into .cache/bench/probot …")
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "probot"],
            cwd=PROBOT_DIR,
            check=True,
            timeout=600,
        )
    app = PROBOT_DIR / "probot_app.mjs"
    shutil.copyfile(Path(__file__).with_name("probot_app.mjs"), app)
    return app


def probot_version() -> str:
    import json

    try:
        data = json.loads((PROBOT_DIR / "node_modules" / "probot" / "package.json").read_text())
        return str(data.get("version", "?"))
    except (OSError, ValueError):
        return "?"


@contextlib.asynccontextmanager
async def server(proc: ManagedProcess, url: str) -> AsyncIterator[str]:
    try:
        proc.start()
        await wait_http(url.rsplit("/", 1)[0] + "/", proc)
        yield url
    finally:
        await asyncio.to_thread(proc.stop)


def otto_web(root: Path, payloads: Payloads, temporal_address: str) -> tuple[ManagedProcess, str]:
    """``otto web`` exactly as deployed (its server stack and settings), one process, warnings only."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTTO_")}
    env.update(
        {
            "OTTO_WEBHOOK_SECRET": payloads.secret,
            "OTTO_TEMPORAL_ADDRESS": temporal_address,
            "OTTO_TRIGGER_LABEL": TRIGGER,
            "OTTO_DATA_DIR": str(root / "otto"),
            "OTTO_HOST": LOOPBACK,
            "OTTO_PORT": str(port),
        }
    )
    argv = [*loadgen.pinned(loadgen.SERVER_CPU), str(VENV_BIN / "otto"), "web", "--log-level", "warning"]
    proc = ManagedProcess("otto web", argv, root / "otto-web.log", env=env, cwd=root)
    return proc, f"http://{LOOPBACK}:{port}/webhooks"


def probot(root: Path, payloads: Payloads) -> tuple[ManagedProcess, str]:
    app = install_probot()
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "PORT": str(port),
            "WEBHOOK_SECRET": payloads.secret,
            "PRIVATE_KEY": payloads.private_key_pem,
            "TRIGGER_LABEL": TRIGGER,
            "NODE_ENV": "production",
            "LOG_LEVEL": "warn",
        }
    )
    argv = [*loadgen.pinned(loadgen.SERVER_CPU), "node", str(app)]
    proc = ManagedProcess("probot", argv, root / "probot.log", env=env, cwd=PROBOT_DIR)
    return proc, f"http://{LOOPBACK}:{port}/webhooks"


@dataclass
class Subject:
    name: str
    url: str
    pid: int
    expect: int  # the status an ignored delivery gets


async def check_answers(subject: Subject, payloads: Payloads) -> None:
    """One signed ignored delivery: the expected status, else the benchmark would measure an error path."""
    headers = headers_for(payloads.secret, "issues", payloads.ignored, str(uuid.uuid4()))
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, trust_env=False) as client:
        response = await client.post(subject.url, content=payloads.ignored, headers=headers)
    if response.status_code != subject.expect:
        raise RuntimeError(f"{subject.name} answered {response.status_code} {response.text[:200]}")


# --------------------------------------------------------------------------------------------- (a)


def saturate(
    subject: Subject,
    body: Path,
    headers: dict[str, str],
    seconds: float,
    connections: int = WRK_CONNECTIONS,
    delivery_prefix: str | None = None,
    temporal_pid: int | None = None,
) -> loadgen.Saturation:
    mark, cpu_before = loadgen.machine_mark(), cpu_seconds(subject.pid)
    temporal_before = cpu_seconds(temporal_pid) if temporal_pid else 0.0
    result = loadgen.wrk(subject.name, subject.url, body, headers, connections, seconds, delivery_prefix)
    result.server_cpu_s = cpu_seconds(subject.pid) - cpu_before
    if temporal_pid:
        result.temporal_cpu_s = cpu_seconds(temporal_pid) - temporal_before
    result.machine = loadgen.Machine.during(mark)
    return result


def at_rate(
    subject: Subject, body: Path, headers: dict[str, str], rate: float, seconds: float
) -> loadgen.FixedRate:
    mark, cpu_before = loadgen.machine_mark(), cpu_seconds(subject.pid)
    clients = max(1, min(H2LOAD_CLIENTS, int(rate // 4)))
    result = loadgen.h2load(subject.name, subject.url, body, headers, rate, clients, seconds, subject.expect)
    result.server_cpu_s = cpu_seconds(subject.pid) - cpu_before
    result.machine = loadgen.Machine.during(mark)
    return result


def alternate(names: list[str], rounds: int) -> list[tuple[int, str]]:
    """A B, B A, A B …: neither side always runs first (or right after the other)."""
    out = []
    for r in range(rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        out += [(r + 1, n) for n in order]
    return out


SAT_HEADERS = [
    "round",
    "target",
    "load1",
    "steal %",
    "answered/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "non-2xx",
    "sock err",
    "server CPU ms/req",
    "server cores",
    "wrk cores",
]


def sat_row(r: int, s: loadgen.Saturation) -> list[object]:
    m = s.machine
    return [
        r,
        s.target,
        m.load1,
        m.steal_pct,
        s.rps,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        s.non_2xx,
        s.socket_errors,
        s.server_ms_per_request,
        s.server_cores,
        s.generator_cores,
    ]


RATE_HEADERS = [
    "offered/s",
    "target",
    "load1",
    "steal %",
    "answered/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "sends behind ms",
    "unexpected",
    "server CPU ms/req",
    "h2load cores",
]


def rate_row(f: loadgen.FixedRate) -> list[object]:
    return [
        int(f.offered),
        f.target,
        f.machine.load1,
        f.machine.steal_pct,
        f.achieved,
        f.p(50),
        f.p(99),
        f.p(99.9),
        max(f.latencies_ms, default=None),
        f.behind_ms,
        f.unexpected,
        f.server_ms_per_request,
        f.generator_cores,
    ]


# --------------------------------------------------------------------------------------------- (b)


@dataclass
class RawStarts:
    count: int
    seconds: float
    p50: float | None
    p99: float | None
    generator_cpu_s: float
    temporal_cpu_s: float
    machine: loadgen.Machine

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def trigger_request(payloads: Payloads) -> StartRun:
    import orjson

    from app.contracts.messages import Trigger
    from app.domain.run import RepoRef
    from app.events import IssuesLabeled

    event = IssuesLabeled.model_validate(orjson.loads(payloads.trigger))
    assert event.installation is not None
    assert event.repository is not None
    repo = RepoRef(
        installation_id=event.installation.id,
        owner=event.repository.owner.login,
        name=event.repository.name,
        repo_id=event.repository.id,
    )
    return StartRun(
        repo=repo,
        issue_number=event.issue.number,
        trigger=Trigger(delivery_id="raw", sender=event.sender.login, label=TRIGGER),
    )


async def raw_start_rate(
    address: str, payloads: Payloads, concurrency: int, seconds: float, temporal_pid: int
) -> RawStarts:
    """What Otto's hand-off does, without HTTP: ``start_workflow(DeliveryWorkflow.run, StartRun, …)`` with
    the pydantic converter and REJECT_DUPLICATE, ``concurrency`` in flight, for ``seconds``."""
    from temporalio.common import WorkflowIDReusePolicy

    from app.engine import connect
    from app.workflows.delivery import DeliveryWorkflow

    client = await connect(address, "default")
    request = trigger_request(payloads)
    latencies: list[float] = []

    async def loop(stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            await client.start_workflow(
                DeliveryWorkflow.run,
                request,
                id=f"delivery/raw-{uuid.uuid4()}",
                task_queue="otto",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(loop(time.perf_counter() + 1.0) for _ in range(concurrency)))  # warm
    latencies.clear()
    mark, temporal_before, gen_before = loadgen.machine_mark(), cpu_seconds(temporal_pid), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(loop(started + seconds) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return RawStarts(
        len(latencies),
        elapsed,
        percentile(latencies, 50),
        percentile(latencies, 99),
        time.process_time() - gen_before,
        cpu_seconds(temporal_pid) - temporal_before,
        loadgen.Machine.during(mark),
    )


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]
    expect: int
    on_answer: Callable[[int], None] | None = None


@dataclass
class Step:
    """One open-loop run of the Python generator."""

    rate: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    started: float = 0.0
    last_answer: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    machine: loadgen.Machine = field(default_factory=loadgen.Machine)

    @property
    def achieved(self) -> float:
        span = max(self.last_answer - self.started, self.duration_s)
        return self.ok / span if span > 0 else 0.0

    def p(self, q: float) -> float | None:
        return ms(percentile(self.latencies, q))


async def open_loop(
    client: httpx.AsyncClient,
    url: str,
    rate: float,
    duration_s: float,
    make: Callable[[int], Request],
    pids: dict[str, int],
) -> Step:
    """Send ``rate`` requests a second for ``duration_s`` on a fixed schedule, whatever the answers do
    (open loop); latency per request from its send to its answer; lag = send time − scheduled time."""
    step = Step(rate, duration_s)
    n = max(1, int(rate * duration_s))

    async def one(i: int, scheduled: float) -> None:
        req = make(i)
        sent = time.perf_counter()
        step.lags.append(sent - scheduled)
        try:
            response = await client.post(url, content=req.body, headers=req.headers)
        except httpx.HTTPError as e:
            step.statuses[type(e).__name__] += 1
            return
        answered = time.perf_counter()
        step.last_answer = max(step.last_answer, answered)
        if req.on_answer is not None:
            req.on_answer(response.status_code)
        if response.status_code == req.expect:
            step.ok += 1
            step.latencies.append(answered - sent)
        else:
            step.statuses[f"HTTP {response.status_code}"] += 1

    tasks: list[asyncio.Task[None]] = []
    mark = loadgen.machine_mark()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    gen_before = time.process_time()
    step.started = time.perf_counter()
    try:
        for i in range(n):
            scheduled = step.started + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
            step.sent += 1
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
        step.cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        step.cpu["generator"] = time.process_time() - gen_before
        step.machine = loadgen.Machine.during(mark)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return step


@dataclass
class Dedupe:
    accepted: list[str] = field(default_factory=list)
    duplicates: int = 0
    new: int = 0
    wrong_duplicate: int = 0
    wrong_new: int = 0

    @property
    def ok(self) -> bool:
        return self.wrong_duplicate == 0 and self.wrong_new == 0


def trigger_maker(payloads: Payloads, dedupe: Dedupe, rng: random.Random) -> Callable[[int], Request]:
    body = payloads.trigger

    def make(_i: int) -> Request:
        if dedupe.accepted and rng.random() < 0.2:
            delivery = rng.choice(dedupe.accepted)
            dedupe.duplicates += 1

            def dup_answer(status: int) -> None:
                if status != 200:
                    dedupe.wrong_duplicate += 1

            return Request(body, headers_for(payloads.secret, "issues", body, delivery), 200, dup_answer)
        delivery = str(uuid.uuid4())
        dedupe.new += 1

        def new_answer(status: int) -> None:
            if status == 202:
                dedupe.accepted.append(delivery)  # only answered ones are redelivered: no race
            else:
                dedupe.wrong_new += 1

        return Request(body, headers_for(payloads.secret, "issues", body, delivery), 202, new_answer)

    return make


# --------------------------------------------------------------------------------------------- (c)

STALLED = 40
STALLED_DECLARED = 25 * 1024 * 1024  # GitHub's largest payload
STALLED_SENT = 20 * 1024 * 1024


@dataclass
class Abuse:
    rss_before: int
    rss_peak: int
    rss_after: int
    answers: Counter[str]
    seconds: float


def stalled_uploads(url: str, pid: int) -> Abuse:
    """``STALLED`` clients each declare a 25 MiB body, send 20 MiB of it and stall: the process's RSS
    before, at its peak and after every one was answered."""
    import socket
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or LOOPBACK, parts.port or 80
    chunk = b" " * (1024 * 1024)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-GitHub-Event: issues\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
        f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Length: {STALLED_DECLARED}\r\n\r\n"
    ).encode()
    answers: Counter[str] = Counter()
    lock = threading.Lock()
    peak = [rss_of(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_of(pid))

    def one(_: int) -> None:
        outcome = "no answer"
        try:
            with socket.create_connection((host, port), timeout=60) as sock:
                sock.sendall(head)
                try:
                    for _ in range(STALLED_SENT // len(chunk)):
                        sock.sendall(chunk)
                except OSError:
                    pass  # answered and closed early (503): read what was said
                data = sock.recv(64)
                outcome = data.split(b"\r\n", 1)[0].decode(errors="replace")[9:12] or "closed"
        except OSError as e:
            outcome = type(e).__name__
        with lock:
            answers[outcome] += 1

    before = rss_of(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(STALLED) as pool:
        list(pool.map(one, range(STALLED)))
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    time.sleep(1.0)
    return Abuse(before, peak[0], rss_of(pid), answers, elapsed)


# --------------------------------------------------------------------------------------------- main


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


async def run(quick: bool) -> int:
    root = bench_dir("intake")
    rounds = 1 if quick else 3
    sat_s = 3.0 if quick else 10.0
    rate_s = 3.0 if quick else 10.0
    trig_s = 3.0 if quick else 8.0
    say(f"Payloads from the GitHub simulator; servers on {LOOPBACK}; {os.cpu_count()} CPUs")
    payloads = await asyncio.to_thread(build_payloads, root)
    ignored_body, trigger_body = root / "ignored.json", root / "trigger.json"
    ignored_body.write_bytes(payloads.ignored)
    trigger_body.write_bytes(payloads.trigger)
    ignored_headers = headers_for(payloads.secret, "issues", payloads.ignored, str(uuid.uuid4()))
    trigger_headers = headers_for(payloads.secret, "issues", payloads.trigger, "set-per-request")
    await asyncio.to_thread(loadgen.ensure_tool, "wrk", "wrk")
    await asyncio.to_thread(loadgen.ensure_tool, "h2load", "nghttp2-client")
    probot_proc, probot_url = await asyncio.to_thread(probot, root, payloads)

    sat: list[tuple[int, loadgen.Saturation]] = []
    fixed: list[tuple[float, loadgen.FixedRate]] = []
    raw: list[tuple[int, RawStarts]] = []
    trig: list[tuple[int, loadgen.Saturation]] = []
    async with embedded_temporal(root / "temporal") as (address, temporal_pid):
        otto_proc, otto_url = otto_web(root, payloads, address)
        async with server(otto_proc, otto_url), server(probot_proc, probot_url):
            subjects = {
                "otto": Subject("otto", otto_url, otto_proc.pid, 202),
                "probot": Subject("probot", probot_url, probot_proc.pid, 200),
            }
            say(
                f"Otto web pid {otto_proc.pid} (otto web: granian on uvloop) · Probot "
                f"{probot_version()} pid {probot_proc.pid} (node) · Temporal dev server {address}"
            )
            for s in subjects.values():
                await check_answers(s, payloads)
                await asyncio.to_thread(saturate, s, ignored_body, ignored_headers, 2.0)  # warm up

            # (a) saturation
            for r, name in alternate(list(subjects), rounds):
                result = await asyncio.to_thread(
                    saturate, subjects[name], ignored_body, ignored_headers, sat_s
                )
                sat.append((r, result))
                say(
                    f"  (a) round {r} {name:6}: {result.rps:8.0f}/s  p99 {result.p99_ms:7.1f} ms  "
                    f"server {result.server_cores:.2f} cores, wrk {result.generator_cores:.2f}  "
                    f"load {result.machine.load1:.2f}, steal {result.machine.steal_pct:.0f}%"
                )
            probot_peak = _median([s.rps for _, s in sat if s.target == "probot"])

            # (a) latency at fixed rates
            for fraction in (0.25, 0.5):
                rate = max(10.0, round(probot_peak * fraction))
                for _, name in alternate(list(subjects), 1 if fraction < 0.5 else 2):
                    f = await asyncio.to_thread(
                        at_rate, subjects[name], ignored_body, ignored_headers, rate, rate_s
                    )
                    fixed.append((fraction, f))
                    say(
                        f"  (a) {name:6} at {rate:6.0f}/s: p99 {f.p(99) or 0:7.1f} ms, "
                        f"sends behind ≤ {f.behind_ms:.0f} ms, h2load {f.generator_cores:.2f} cores"
                    )

            # (b) sustained trigger deliveries vs raw starts
            otto = subjects["otto"]
            for r, name in alternate(["raw", "otto"], rounds):
                if name == "raw":
                    rs = await raw_start_rate(address, payloads, TRIGGER_CONNECTIONS, trig_s, temporal_pid)
                    raw.append((r, rs))
                    say(f"  (b) round {r} raw start_workflow: {rs.rate:7.1f}/s")
                else:
                    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
                    t = await asyncio.to_thread(
                        saturate,
                        otto,
                        trigger_body,
                        trigger_headers,
                        trig_s,
                        TRIGGER_CONNECTIONS,
                        prefix,
                        temporal_pid,
                    )
                    trig.append((r, t))
                    say(f"  (b) round {r} otto trigger deliveries: {t.rps:7.1f}/s (non-2xx {t.non_2xx})")

            # (b) latency at 50/s with redeliveries
            dedupe = Dedupe()
            make = trigger_maker(payloads, dedupe, random.Random(7))
            async with httpx.AsyncClient(
                timeout=REQUEST_TIMEOUT_S,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
                trust_env=False,
            ) as client:
                pids = {"server": otto_proc.pid, "temporal": temporal_pid}
                await open_loop(client, otto_url, 20, 1.0, make, pids)  # warm up
                at_50 = await open_loop(client, otto_url, 50, 10.0 if not quick else 4.0, make, pids)
            say(f"  (b) otto at 50/s: p99 {at_50.p(99) or 0:.1f} ms")

            # (c) the incident: stalled 25 MiB uploads, twice (the second must not grow the process)
            abuses: list[Abuse] = []
            for _ in range(2):
                abuse = await asyncio.to_thread(stalled_uploads, otto_url, otto_proc.pid)
                abuses.append(abuse)
                say(f"  (c) {STALLED} stalled uploads: RSS peak {mib(abuse.rss_peak) or 0:.0f} MiB")

    report(sat, fixed, raw, trig, at_50, dedupe)
    table(
        f"(c) {STALLED} clients each declare 25 MiB, send 20 MiB and stall (otto web's limits: 64 readers, "
        "128 MiB held, 10 s per body)",
        ["wave", "RSS before MiB", "RSS peak MiB", "RSS after MiB", "answers", "seconds"],
        [
            [
                i + 1,
                mib(a.rss_before),
                mib(a.rss_peak),
                mib(a.rss_after),
                ", ".join(f"{k}×{v}" for k, v in sorted(a.answers.items())),
                a.seconds,
            ]
            for i, a in enumerate(abuses)
        ],
    )
    say(
        "(dropped bodies go back to the allocator, which may keep the pages for reuse: RSS after a wave can "
        "stay near its peak; a second wave must peak no higher)"
    )
    return 0 if dedupe.ok else 1


def report(
    sat: list[tuple[int, loadgen.Saturation]],
    fixed: list[tuple[float, loadgen.FixedRate]],
    raw: list[tuple[int, RawStarts]],
    trig: list[tuple[int, loadgen.Saturation]],
    at_50: Step,
    dedupe: Dedupe,
) -> None:
    table(
        f"(a) ignored deliveries at saturation: wrk, 1 thread, {WRK_CONNECTIONS} connections, "
        "rounds alternate",
        SAT_HEADERS,
        [sat_row(r, s) for r, s in sat],
    )
    table(
        "(a) ignored deliveries at fixed rates (¼ and ½ of Probot's median peak): h2load --rps, "
        f"up to {H2LOAD_CLIENTS} connections",
        RATE_HEADERS,
        [rate_row(f) for _, f in fixed],
    )
    by = {name: [s for _, s in sat if s.target == name] for name in ("otto", "probot")}
    peak = {name: _median([s.rps for s in runs]) for name, runs in by.items()}
    cpu = {name: _median([s.server_ms_per_request or 0.0 for s in runs]) for name, runs in by.items()}
    rounds = sorted({r for r, _ in sat})
    paired = [
        next(s.rps for q, s in sat if q == r and s.target == "otto")
        / next(s.rps for q, s in sat if q == r and s.target == "probot")
        for r in rounds
    ]
    ratio = peak["otto"] / peak["probot"] if peak["probot"] else 0.0
    cpu_ratio = cpu["probot"] / cpu["otto"] if cpu["otto"] else 0.0
    table(
        "(a) summary (medians over rounds)",
        ["target", "answered/s", "server CPU ms/req", "per core /s", "p99 ms at ½ Probot's peak"],
        [
            [
                name,
                peak[name],
                cpu[name],
                1000 / cpu[name] if cpu[name] else None,
                _max_p99(fixed, name, 0.5),
            ]
            for name in ("otto", "probot")
        ],
    )

    raw_rates = [rs.rate for _, rs in raw]
    trig_rates = [t.rps for _, t in trig]
    table(
        f"(b) trigger deliveries (wrk, {TRIGGER_CONNECTIONS} connections, a fresh delivery id per "
        f"request) vs raw start_workflow ({TRIGGER_CONNECTIONS} in flight), rounds alternate",
        [
            "round",
            "what",
            "load1",
            "steal %",
            "started/s",
            "p50 ms",
            "p99 ms",
            "non-2xx",
            "Otto CPU ms/req",
            "Temporal CPU ms/start",
            "gen cores",
        ],
        [
            *[raw_row(r, rs) for r, rs in raw],
            *[trigger_row(r, t) for r, t in trig],
        ],
    )
    step_cpu = at_50.cpu
    table(
        "(b) trigger deliveries at 50/s, 20% redeliveries (Python open-loop generator)",
        [
            "sent",
            "answered ok/s",
            "p50 ms",
            "p99 ms",
            "gen lag p99 ms",
            "gen cores",
            "Otto CPU ms/req",
            "unexpected",
        ],
        [
            [
                at_50.sent,
                at_50.achieved,
                at_50.p(50),
                at_50.p(99),
                ms(percentile(at_50.lags, 99)),
                step_cpu.get("generator", 0.0) / at_50.duration_s,
                step_cpu.get("server", 0.0) * 1000 / at_50.ok if at_50.ok else None,
                ", ".join(f"{k}×{v}" for k, v in sorted(at_50.statuses.items())) or "-",
            ]
        ],
    )
    say(
        f"\nRedeliveries: {dedupe.duplicates} sent, {dedupe.wrong_duplicate} not answered 200; new "
        f"deliveries: {dedupe.new} sent, {dedupe.wrong_new} not answered 202 (timeouts and errors count "
        "as not answered)."
    )

    half = _max_p99(fixed, "otto", 0.5)
    share = _median(trig_rates) / _median(raw_rates) if raw_rates and _median(raw_rates) else 0.0
    p99_50 = at_50.p(99)
    targets(
        [
            (
                "(a) ignored deliveries/s at saturation, Otto / Probot",
                "≥ 2×",
                f"{peak['otto']:.0f}/s / {peak['probot']:.0f}/s = {ratio:.2f}× "
                f"(rounds: {', '.join(f'{p:.2f}×' for p in paired)})",
                verdict(ratio >= 2, f"{ratio:.2f}×"),
            ),
            (
                "(a) server CPU per ignored delivery, Probot / Otto",
                "-",
                f"{cpu['probot']:.3f} / {cpu['otto']:.3f} ms = {cpu_ratio:.2f}× less CPU per request",
                "-",
            ),
            (
                "(a) Otto p99 at ½ Probot's peak",
                "< 10 ms",
                f"{_f(half)} ms",
                verdict(half is not None and half < 10, f"p99 {_f(half)} ms"),
            ),
            (
                "(b) Otto trigger deliveries/s vs raw start_workflow/s",
                "≥ 0.8×",
                f"{_median(trig_rates):.0f}/s vs {_median(raw_rates):.0f}/s = {share:.2f}×",
                verdict(share >= 0.8, f"{share:.2f}×"),
            ),
            (
                "(b) Otto p99 at 50/s",
                "< 50 ms",
                f"{_f(p99_50)} ms",
                verdict(p99_50 is not None and p99_50 < 50, f"p99 {_f(p99_50)} ms"),
            ),
            (
                "(b) redeliveries 200, new 202",
                "all",
                f"{dedupe.duplicates} dup, {dedupe.new} new",
                verdict(
                    dedupe.ok, f"{dedupe.wrong_duplicate} dup, {dedupe.wrong_new} new answered otherwise"
                ),
            ),
        ]
    )
    if peak["otto"]:
        per = peak["otto"] / 2  # run a web process at half its saturation rate: p99 stays low
        table(
            "Web processes for a webhook rate (one process per core, each at ½ of its measured peak)",
            ["deliveries/s", "otto web processes"],
            [[rate, math.ceil(rate / per)] for rate in (100, 1_000, 5_000, 20_000)],
        )
    pin = "each server pinned to CPU 1, the generators to CPU 0 (taskset); " if loadgen.pinned(0) else ""
    say(
        f"\n{pin}wrk and h2load are C programs on the same machine as the servers; their CPU is shown "
        "in cores (1.00 = one core busy). 'sends behind' is how far h2load's sends fell behind the "
        "constant-rate schedule at worst (large = the latencies under-state). 'steal' is CPU time the "
        "hypervisor gave to other machines. (b) ran without a worker: deliveries are accepted, not run."
    )


def raw_row(r: int, rs: RawStarts) -> list[object]:
    m = rs.machine
    temporal = rs.temporal_cpu_s * 1000 / rs.count if rs.count else None
    cores = rs.generator_cpu_s / rs.seconds
    return [
        r,
        "raw start_workflow",
        m.load1,
        m.steal_pct,
        rs.rate,
        ms(rs.p50),
        ms(rs.p99),
        "-",
        "-",
        temporal,
        cores,
    ]


def trigger_row(r: int, t: loadgen.Saturation) -> list[object]:
    m = t.machine
    temporal = t.temporal_cpu_s * 1000 / t.requests if t.requests else None
    row: list[object] = [r, "otto trigger", m.load1, m.steal_pct, t.rps, t.p50_ms, t.p99_ms, t.non_2xx]
    return [*row, t.server_ms_per_request, temporal, t.generator_cores]


def _max_p99(fixed: list[tuple[float, loadgen.FixedRate]], target: str, fraction: float) -> float | None:
    """The worst p99 of ``target``'s runs at ``fraction`` of Probot's peak."""
    values = [f.p(99) for q, f in fixed if f.target == target and q == fraction]
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main(argv: list[str]) -> int:
    return run_main(lambda: run("--quick" in argv))
