"""Crash recovery: a real ``otto serve`` SIGKILLed mid-agent and mid-check, and its embedded Temporal alone
SIGKILLed mid-agent (``tests/crashes.py``), restarted on the same data dir; how long until the task is at
work again and done, and what the world saw (the counts ``tests/test_crashes.py`` asserts).

- **kill → Otto gone**: SIGKILL: at once; the engine killed: until Otto noticed, stopped and exited 1.
- **restart → ready**: starting ``otto serve`` again to ``/readyz`` 200.
- **kill → resumed**: until the task is at work again (the agent's retry asking the model; the check
  running again). Temporal hands the dead attempt on once its heartbeat is missed
  (``OTTO_HEARTBEAT_TIMEOUT_S``), and the run's next step waits ``OTTO_STICKY_QUEUE_TIMEOUT_S`` for the
  worker that ran it last: both are measured with Otto's defaults (15 s, 10 s) and with short ones (5 s, 2 s).
- **kill → done**: until the task's PR and check run are published.

``python -m bench crash [--quick]``. Instrument: ``time.monotonic`` in this process around the kill, the
restart and the polled records (every 50–100 ms, so figures are at most ~0.1 s late).
"""

from __future__ import annotations

from app.dev.local import LocalWorld
from bench.common import bench_dir, percentile, run_main, say, table
from tests.crashes import CrashReport, Where, crash_and_recover

SETTINGS: dict[str, dict[str, object]] = {
    "defaults (15 s / 10 s)": {},
    "short (5 s / 2 s)": {"heartbeat_timeout_s": 5.0, "sticky_queue_timeout_s": 2.0},
}
WHERE: list[Where] = ["agent", "verify", "engine"]


def counts(report: CrashReport) -> str:
    rec = report.state.record("t1")
    pushed = [(ref, new) for ref, _old, new in report.pushes]
    twice = len(pushed) - len(set(pushed))
    usage, served = report.state.usage, report.served
    parts = [
        f"pushes {len(report.pushes)} (twice: {twice}, forced: {len(report.forced)})",
        f"check runs on the head {report.check_runs.get(rec.head_sha or '', 0)}, "
        f"at most {max(report.check_runs.values(), default=0)} on any head",
        f"PRs {report.pulls}",
        f"status comments {report.status_comments}",
        f"model calls served {served.calls}, in the run's cost {usage.calls} "
        f"(${served.cost_usd:.5f} served, ${usage.cost_usd:.5f} reported)",
        f"agent requests (step, status) {report.agent_requests}",
        f"`def shout` on main {report.shouts_on_main}x",
        f"exit {report.exit_code}",
    ]
    return "; ".join(parts)


async def run(rounds: int) -> int:
    root = bench_dir("crash")
    failures = 0
    rows: list[tuple[str, float | None, float | None, float | None, float | None, float]] = []
    for label, settings in SETTINGS.items():
        for where in WHERE:
            reports: list[CrashReport] = []
            for n in range(rounds):
                world = LocalWorld.start(root / f"{where}-{len(rows)}-{n}" / "world")
                try:
                    report = await crash_and_recover(
                        world, root / f"{where}-{len(rows)}-{n}", where, **settings
                    )
                finally:
                    world.stop()
                say(f"{label}, killed mid-{where}: {counts(report)}")
                ok = (
                    report.merged.phase == "done"
                    and report.shouts_on_main == 1
                    and report.served.calls == report.state.usage.calls
                )
                failures += not ok
                reports.append(report)
            rows.append(
                (
                    f"{where} — {label}",
                    percentile([r.killed_s for r in reports], 50),
                    percentile([r.ready_s for r in reports], 50),
                    percentile([r.resumed_s for r in reports], 50),
                    percentile([r.finished_s for r in reports], 50),
                    max(r.finished_s for r in reports),
                )
            )
    table(
        f"otto serve killed mid-task, {rounds} round(s) each (p50 s; kill → done also max)",
        ["killed mid-", "kill → gone", "restart → ready", "kill → resumed", "kill → done", "max"],
        rows,
    )
    return 1 if failures else 0


def main(flags: list[str]) -> int:
    return run_main(lambda: run(1 if "--quick" in flags else 3))


if __name__ == "__main__":
    raise SystemExit(main([]))
