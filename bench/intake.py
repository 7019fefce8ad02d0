"""Webhook intake: signed deliveries from an open-loop load generator (httpx, asyncio) on loopback.

(a) Events Otto verifies and then ignores (``issues.labeled`` with another label, ``issue_comment.created``
    without a command, half and half), at rising rates until saturation, side by side with a minimal Probot
    app doing the same verify-and-route (``npm install probot`` into ``.cache/bench/probot``, run by node).
(b) Events that start a run (``issues.labeled`` with the trigger label from a writer), answered only after
    Temporal durably accepted the ``DeliveryWorkflow``, with 20% redeliveries of already accepted delivery
    ids (each must get 200; each new one 202), against the raw ``client.start_workflow`` rate of the same
    Temporal dev server measured in the same run. No worker runs: a delivery only has to be accepted.

Otto's web app runs in its own process (``python -m bench._otto_web``: uvicorn, one process, no access
log); Probot runs in its own node process; the load generator is this process. All on one 2-core machine,
so the generator competes with the server for CPU: its scheduling lag is reported next to the latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import (
    CACHE,
    LOOPBACK,
    REPO_ROOT,
    VENV_BIN,
    ManagedProcess,
    bench_dir,
    cpu_seconds,
    embedded_temporal,
    free_port,
    ms,
    percentile,
    run_main,
    say,
    table,
    targets,
    verdict,
    wait_http,
)

TRIGGER = "otto"
PROBOT_DIR = CACHE / "probot"
SUSTAINED_P99_S = 0.25  # a step whose p99 exceeds this is queueing: saturated
REQUEST_TIMEOUT_S = 10.0  # GitHub waits at most 10 s for an answer


# --------------------------------------------------------------------------------------------- payloads


@dataclass
class Payloads:
    secret: str
    ignored: list[tuple[str, bytes]]  # (event, body)
    trigger: bytes
    private_key_pem: str


def build_payloads(root: Path) -> Payloads:
    """Real payloads from the GitHub simulator (its webhook URL unset, so they are only recorded)."""
    from app.local import new_private_key
    from app.simulator import Simulator

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
        commented = sim.comment("octo-org", "greeter", number, "Thanks, this would help me too!", "mona")
        labeled_trigger = sim.add_label("octo-org", "greeter", number, TRIGGER, "mona")
    finally:
        sim.close()
    return Payloads(
        secret=secret,
        ignored=[("issues", labeled_other.body), ("issue_comment", commented.body)],
        trigger=labeled_trigger.body,
        private_key_pem=private_pem,
    )


def headers_for(secret: str, event: str, body: bytes, delivery: str) -> dict[str, str]:
    from app.intake import sign

    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret, body),
    }


# --------------------------------------------------------------------------------------------- load


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]
    expect: int
    on_answer: Callable[[int], None] | None = None


@dataclass
class Step:
    target: str
    rate: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    started: float = 0.0
    last_answer: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the step, by process

    def cpu_ms_per_request(self, name: str) -> float | None:
        if name not in self.cpu or not self.ok:
            return None
        return self.cpu[name] * 1000 / self.ok

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    @property
    def achieved(self) -> float:
        span = max(self.last_answer - self.started, self.duration_s)
        return self.ok / span if span > 0 else 0.0

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float | None:
        return percentile(self.latencies, 99)

    @property
    def generator_late(self) -> bool:
        lag = percentile(self.lags, 50)
        return lag is not None and lag > 0.005

    @property
    def sustained(self) -> bool:
        p99 = self.p99
        return (
            self.failed == 0
            and self.achieved >= 0.95 * self.rate
            and p99 is not None
            and p99 <= SUSTAINED_P99_S
        )

    def row(self) -> list[object]:
        wrong = ", ".join(f"{k}×{v}" for k, v in sorted(self.statuses.items()) if k != "ok") or "-"
        return [
            self.target,
            int(self.rate),
            self.sent,
            self.achieved,
            ms(self.p50),
            ms(self.p99),
            ms(percentile(self.lags, 99)),
            self.cpu_ms_per_request("server"),
            self.cpu_ms_per_request("temporal"),
            self.cpu_ms_per_request("generator"),
            wrong,
            "yes" if self.sustained else "no" + (" (generator late)" if self.generator_late else ""),
        ]


STEP_HEADERS = [
    "target",
    "offered/s",
    "sent",
    "answered ok/s",
    "p50 ms",
    "p99 ms",
    "gen lag p99 ms",
    "server CPU ms/req",
    "temporal CPU ms/req",
    "gen CPU ms/req",
    "unexpected",
    "sustained",
]


async def open_loop(
    client: httpx.AsyncClient,
    url: str,
    target: str,
    rate: float,
    duration_s: float,
    make: Callable[[int], Request],
    pids: dict[str, int] | None = None,
) -> Step:
    """Send ``rate`` requests a second for ``duration_s`` on a fixed schedule, whatever the answers do
    (open loop); latency per request from its send to its answer; lag = send time − scheduled time."""
    step = Step(target, rate, duration_s)
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
            step.statuses["ok"] += 1
            step.latencies.append(answered - sent)
        else:
            step.statuses[f"HTTP {response.status_code}"] += 1

    tasks: list[asyncio.Task[None]] = []
    pids = pids or {}
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
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return step


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=REQUEST_TIMEOUT_S,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
        trust_env=False,
    )


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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTTO_")}
    env.update(
        {
            "OTTO_WEBHOOK_SECRET": payloads.secret,
            "OTTO_TEMPORAL_ADDRESS": temporal_address,
            "OTTO_TRIGGER_LABEL": TRIGGER,
            "OTTO_DATA_DIR": str(root / "otto"),
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    argv = [str(VENV_BIN / "python"), "-m", "bench._otto_web", str(port)]
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
    proc = ManagedProcess("probot", ["node", str(app)], root / "probot.log", env=env, cwd=PROBOT_DIR)
    return proc, f"http://{LOOPBACK}:{port}/webhooks"


# --------------------------------------------------------------------------------------------- (a)


def ignored_maker(payloads: Payloads, expect: int) -> Callable[[int], Request]:
    def make(i: int) -> Request:
        event, body = payloads.ignored[i % len(payloads.ignored)]
        return Request(body, headers_for(payloads.secret, event, body, str(uuid.uuid4())), expect)

    return make


async def class_a(
    subjects: dict[str, tuple[str, int, int]], payloads: Payloads, rates: list[int], duration_s: float
) -> tuple[list[Step], dict[str, float], dict[str, float], Step | None]:
    steps: list[Step] = []
    best: dict[str, float] = {name: 0.0 for name in subjects}
    peak: dict[str, float] = {name: 0.0 for name in subjects}
    saturated: set[str] = set()
    otto_at_500: Step | None = None
    async with new_client() as client:
        for name, (url, expect, _pid) in subjects.items():  # warm up (connections, JIT)
            await open_loop(client, url, name, 200, 1.0, ignored_maker(payloads, expect))
        for rate in rates:
            for name, (url, expect, pid) in subjects.items():
                if name in saturated:
                    continue
                make = ignored_maker(payloads, expect)
                step = await open_loop(client, url, name, rate, duration_s, make, {"server": pid})
                steps.append(step)
                say(f"  (a) {name:6} {rate:>5}/s: {step.achieved:7.1f}/s ok, p99 {ms(step.p99) or 0:8.1f} ms")
                if name == "otto" and rate == 500:
                    otto_at_500 = step
                peak[name] = max(peak[name], step.achieved)
                if step.sustained:
                    best[name] = max(best[name], step.achieved)
                else:
                    saturated.add(name)
                await asyncio.sleep(0.5)
            if len(saturated) == len(subjects):
                break
    return steps, best, peak, otto_at_500


# --------------------------------------------------------------------------------------------- (b)


@dataclass
class RawStarts:
    rate: float
    count: int
    p50: float | None
    p99: float | None


async def raw_start_rate(address: str, concurrency: int, duration_s: float) -> RawStarts:
    """``client.start_workflow`` of a trivial workflow (no worker needed to accept it), back to back with
    ``concurrency`` in flight, for ``duration_s``."""
    from temporalio.client import Client

    client = await Client.connect(address)
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s
    payload = {"repo": "octo-org/greeter", "issue_number": 1, "sender": "mona", "label": TRIGGER}

    async def loop() -> None:
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            await client.start_workflow(
                "BenchTrivialWorkflow", payload, id=f"bench-raw/{uuid.uuid4()}", task_queue="bench-raw"
            )
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return RawStarts(
        len(latencies) / elapsed, len(latencies), percentile(latencies, 50), percentile(latencies, 99)
    )


@dataclass
class Dedupe:
    accepted: list[str] = field(default_factory=list)
    duplicates: int = 0
    new: int = 0
    wrong_duplicate: int = 0
    wrong_new: int = 0


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


async def class_b(
    otto_url: str, payloads: Payloads, rates: list[int], duration_s: float, pids: dict[str, int]
) -> tuple[list[Step], float, Step | None, Dedupe]:
    dedupe = Dedupe()
    make = trigger_maker(payloads, dedupe, random.Random(7))
    steps: list[Step] = []
    best = 0.0
    at_50: Step | None = None
    async with new_client() as client:
        await open_loop(client, otto_url, "otto", 20, 1.0, make)  # warm up
        for rate in rates:
            step = await open_loop(client, otto_url, "otto", rate, duration_s, make, pids)
            steps.append(step)
            say(f"  (b) otto   {rate:>5}/s: {step.achieved:7.1f}/s ok, p99 {ms(step.p99) or 0:8.1f} ms")
            if rate == 50:
                at_50 = step
            if not step.sustained:
                break
            best = max(best, step.achieved)
            await asyncio.sleep(0.5)
    return steps, best, at_50, dedupe


# --------------------------------------------------------------------------------------------- main


async def run(quick: bool) -> int:
    root = bench_dir("intake")
    rates_a = [100, 250, 500] if quick else [100, 250, 500, 1000, 2000]
    rates_b = [25, 50] if quick else [25, 50, 75, 100, 150, 200, 300]
    step_s = 1.0 if quick else 3.0
    raw_s = 1.0 if quick else 3.0
    say(
        f"Payloads from the GitHub simulator; servers on {LOOPBACK}; {os.cpu_count()} CPUs; "
        f"step {step_s:.0f}s"
    )
    payloads = await asyncio.to_thread(build_payloads, root)
    probot_proc, probot_url = await asyncio.to_thread(probot, root, payloads)
    async with embedded_temporal(root / "temporal") as (address, temporal_pid):
        otto_proc, otto_url = otto_web(root, payloads, address)
        async with server(otto_proc, otto_url), server(probot_proc, probot_url):
            say(
                f"Otto web pid {otto_proc.pid} · Probot {probot_version()} pid {probot_proc.pid} · "
                f"Temporal {address}"
            )
            subjects = {
                "otto": (otto_url, 202, otto_proc.pid),
                "probot": (probot_url, 200, probot_proc.pid),
            }
            steps_a, best_a, peak_a, otto_500 = await class_a(subjects, payloads, rates_a, step_s)
            raw_seq = await raw_start_rate(address, 1, raw_s / 2)
            raw = await raw_start_rate(address, 16, raw_s)
            say(
                f"  raw start_workflow: {raw_seq.rate:.1f}/s one at a time, "
                f"{raw.rate:.1f}/s with 16 in flight"
            )
            pids = {"server": otto_proc.pid, "temporal": temporal_pid}
            steps_b, best_b, otto_50, dedupe = await class_b(otto_url, payloads, rates_b, step_s, pids)

    table("(a) ignored events (verify + route + ignore)", STEP_HEADERS, [s.row() for s in steps_a])
    table(
        "(b) trigger deliveries, durably handed to Temporal (20% redeliveries)",
        STEP_HEADERS,
        [s.row() for s in steps_b],
    )
    table(
        "Raw Temporal client.start_workflow (trivial workflow, same dev server)",
        ["mode", "starts", "starts/s", "p50 ms", "p99 ms"],
        [
            ["one at a time", raw_seq.count, raw_seq.rate, ms(raw_seq.p50), ms(raw_seq.p99)],
            ["16 in flight", raw.count, raw.rate, ms(raw.p50), ms(raw.p99)],
        ],
    )
    say(
        f"\nRedeliveries: {dedupe.duplicates} sent, {dedupe.wrong_duplicate} not answered 200; "
        f"new deliveries: {dedupe.new} sent, {dedupe.wrong_new} not answered 202 "
        "(timeouts and errors count as not answered)."
    )

    # Capacity = the most answered/s in any step (the rates are coarse: a server saturated at 2000/s may
    # still answer 1400/s, above its last sustained step); both figures are printed.
    ratio = peak_a["otto"] / peak_a["probot"] if peak_a["probot"] else 0.0
    top_a = max(rates_a)
    generator_bound = all(b >= 0.95 * top_a for b in best_a.values())
    p99_500 = ms(otto_500.p99) if otto_500 else None
    cpu = {name: _cpu_per_request(steps_a, name) for name in ("otto", "probot")}
    cpu_ratio = cpu["probot"] / cpu["otto"] if cpu["otto"] and cpu["probot"] else 0.0
    raw_best = max(raw.rate, raw_seq.rate)
    share = best_b / raw_best if raw_best else 0.0
    p99_50 = ms(otto_50.p99) if otto_50 else None
    dedupe_ok = dedupe.wrong_duplicate == 0 and dedupe.wrong_new == 0
    note_a = " (both kept up with the top offered rate: lower bounds)" if generator_bound else ""
    targets(
        [
            (
                "(a) highest sustained step, answered/s",
                "-",
                f"Otto {best_a['otto']:.0f}/s, Probot {best_a['probot']:.0f}/s{note_a}",
                "-",
            ),
            (
                "(a) capacity (peak answered/s), Otto / Probot",
                "≥ 2×",
                f"{peak_a['otto']:.0f}/s / {peak_a['probot']:.0f}/s = {ratio:.2f}×",
                verdict(ratio >= 2, f"Otto sustains {ratio:.2f}× Probot's rate"),
            ),
            (
                "(a) server CPU per ignored delivery, Otto / Probot",
                "-",
                f"{_f(cpu['otto'])} / {_f(cpu['probot'])} ms → one core ≈ "
                f"{_per_core(cpu['otto'])} / {_per_core(cpu['probot'])} per s = {cpu_ratio:.2f}×",
                "-",
            ),
            (
                "(a) Otto p50 / p99 at 500/s",
                "p99 < 10 ms",
                f"{_f(ms(otto_500.p50) if otto_500 else None)} / {_f(p99_500)} ms",
                verdict(p99_500 is not None and p99_500 < 10, _why_p99(otto_500, 10)),
            ),
            (
                "(b) Otto sustained trigger deliveries/s vs raw starts/s",
                "≥ 0.8×",
                f"{best_b:.0f}/s vs {raw_best:.0f}/s = {share:.2f}×",
                verdict(share >= 0.8, f"{share:.2f}× of the raw start rate"),
            ),
            (
                "(b) Otto p99 at 50/s",
                "< 50 ms",
                f"{_f(p99_50)} ms",
                verdict(p99_50 is not None and p99_50 < 50, _why_p99(otto_50, 50)),
            ),
            (
                "(b) redeliveries 200, new 202",
                "all",
                f"{dedupe.duplicates} dup, {dedupe.new} new",
                verdict(
                    dedupe_ok, f"{dedupe.wrong_duplicate} dup, {dedupe.wrong_new} new answered otherwise"
                ),
            ),
        ]
    )
    say(
        "\nSustained = no unexpected answer, ≥95% of the offered rate answered, p99 ≤ "
        f"{SUSTAINED_P99_S * 1000:.0f} ms. Latency is from send to answer; 'gen lag' is how late the load "
        "generator (same machine, Python) sent versus its schedule. Otto: uvicorn (h11, asyncio), one "
        "process; Probot: node, one process. (b) ran without a worker: deliveries are accepted, not run."
    )
    return 0 if dedupe_ok else 1


def _cpu_per_request(steps: list[Step], target: str) -> float | None:
    """Server CPU ms per answered request over every step of ``target``."""
    mine = [s for s in steps if s.target == target and "server" in s.cpu]
    answered = sum(s.ok for s in mine)
    return sum(s.cpu["server"] for s in mine) * 1000 / answered if answered else None


def _per_core(cpu_ms: float | None) -> str:
    return "-" if not cpu_ms else f"{1000 / cpu_ms:.0f}"


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _why_p99(step: Step | None, limit_ms: float) -> str:
    if step is None:
        return "that rate was not reached (saturated below it)"
    p99 = ms(step.p99)
    late = "; the load generator was late too" if step.generator_late else ""
    return f"p99 {_f(p99)} ms > {limit_ms:.0f} ms{late}"


def main(argv: list[str]) -> int:
    return run_main(lambda: run("--quick" in argv))
