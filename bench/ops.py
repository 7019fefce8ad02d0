"""Operations: how fast ``otto serve`` (embedded Temporal, the local world's simulator and scripted model)
stops and comes back.

- **SIGTERM, idle**: from the signal to the process's exit (and to its Temporal server being gone); the
  exit code must be 0.
- **SIGTERM with an attempt mid-check**: the task's sandboxed check (``sleep 60``) outlasts
  ``OTTO_SHUTDOWN_GRACE_S``: the exit comes after the grace period, the check is killed.
- **SIGKILL, then restart**: from starting the new ``otto serve`` on the same data dir to ``/readyz``
  answering 200 (Temporal answers, the App authenticates); compared with the first start of a fresh data dir.
- **Engine death**: the embedded Temporal SIGKILLed; from the kill to Otto's (non-zero) exit.

``python -m bench ops [--quick]``. Instrument: ``time.monotonic`` in this process around signals, exits and
HTTP probes (polled every 50 ms, so figures are at most ~50 ms late).
"""

from __future__ import annotations

import asyncio
import signal
import time

from app.dev.demo import SAMPLE_REPO
from app.dev.local import LocalWorld
from bench.common import bench_dir, local_world, percentile, run_main, say, table
from tests.e2e import eventually, label_new_issue
from tests.processes import OttoServe, gone, processes_mentioning
from tests.test_failures_e2e import SINGLE, create, scenario
from tests.test_faults import new_repo

GRACE_S = 5.0


async def _exit_time(otto: OttoServe, sig: int = signal.SIGTERM) -> tuple[float, float, int]:
    """Seconds from ``sig`` to Otto's exit, to its Temporal server being gone; the exit code."""
    engine = otto.engine_pid
    start = time.monotonic()
    otto.signal(sig)
    code = await asyncio.to_thread(otto.wait_exit, 120)
    exited = time.monotonic() - start
    await gone(engine, 60)
    return exited, time.monotonic() - start, code


async def run(rounds: int) -> int:
    root = bench_dir("ops")
    failures = 0
    with local_world(root / "world", None) as (world, _timed):
        otto = OttoServe(world, root / "serve", {"shutdown_grace_s": GRACE_S})
        try:
            cold = await otto.start().wait_ready()
            say(f"first start (fresh data dir) to ready: {cold:.2f} s")

            term_exit: list[float] = []
            term_gone: list[float] = []
            restart: list[float] = []
            for _ in range(rounds):
                exited, all_gone, code = await _exit_time(otto)
                failures += code != 0
                term_exit.append(exited)
                term_gone.append(all_gone)
                restart.append(await otto.restart())  # after a clean stop, for comparison

            killed_restart: list[float] = []
            for _ in range(rounds):
                engine = otto.engine_pid
                otto.kill()
                await gone(engine, 60)
                killed_restart.append(await otto.restart())

            death: list[float] = []
            for _ in range(rounds):
                start = time.monotonic()
                otto.kill_engine()
                code = await asyncio.to_thread(otto.wait_exit, 120)
                death.append(time.monotonic() - start)
                failures += code == 0
                await otto.restart()

            busy = await _busy_exit(otto, world)
            table(
                f"otto serve, {rounds} rounds each (OTTO_SHUTDOWN_GRACE_S={GRACE_S:g})",
                ["figure", "p50 s", "max s"],
                [
                    ("SIGTERM (idle) → exit 0", percentile(term_exit, 50), max(term_exit)),
                    ("SIGTERM (idle) → Temporal gone too", percentile(term_gone, 50), max(term_gone)),
                    ("restart after SIGTERM → /readyz 200", percentile(restart, 50), max(restart)),
                    (
                        "restart after SIGKILL → /readyz 200",
                        percentile(killed_restart, 50),
                        max(killed_restart),
                    ),
                    ("engine SIGKILLed → Otto exits (non-zero)", percentile(death, 50), max(death)),
                    ("SIGTERM mid-check → exit 0 (one run)", busy, busy),
                ],
            )
        finally:
            otto.stop()
        left = processes_mentioning(str(otto.data_dir))
        if left:
            say(f"LEFT RUNNING: {left}")
            failures += 1
    return 1 if failures else 0


async def _busy_exit(otto: OttoServe, world: LocalWorld) -> float:
    """SIGTERM while a task's check (sandboxed ``sleep 60``) runs: seconds to the exit."""
    world.model.load(scenario(SINGLE, {"t1": [create("a.py", "A = 1\n"), {"text": "Added a.py."}]}))
    r = new_repo(world.sim, world.app_id, "busy", {**SAMPLE_REPO, ".github/otto.yml": "verify: sleep 60\n"})
    label_new_issue(world.sim, r)
    data = str(otto.data_dir)
    await eventually(
        lambda: any("sleep 60" in line for line in processes_mentioning(data).values()), within=120
    )
    exited, _, _ = await _exit_time(otto)
    return exited


def main(flags: list[str]) -> int:
    return run_main(lambda: run(3 if "--quick" in flags else 7))


if __name__ == "__main__":
    raise SystemExit(main([]))
