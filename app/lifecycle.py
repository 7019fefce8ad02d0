"""How ``otto serve``, ``otto web`` and ``otto worker`` run and stop.

SIGTERM or SIGINT (what ``docker stop``, systemd and Kubernetes send; Ctrl-C) starts a graceful shutdown:

1. ``/readyz`` answers 503; the web server stops accepting connections and lets in-flight requests finish;
2. at the same time the workers stop polling and give running activities ``OTTO_SHUTDOWN_GRACE_S`` to
   finish; then Temporal's worker cancels the rest and reports them back, so Temporal hands them to another
   worker (or to this one, restarted); sandboxed commands those activities were waiting for are then killed
   (never before the activities were cancelled: their results would be acted on);
3. the embedded Temporal server (``otto serve`` without ``OTTO_TEMPORAL_ADDRESS``) is stopped last, and
   the process exits 0.

Everything is bounded: if the shutdown has not finished ``SHUTDOWN_MARGIN_S`` after the grace period, the
process kills what it started and exits 1. A second signal stops at once (running activities are cancelled,
exit 1). A signal during startup ends the startup (whatever was started is stopped) and exits 0. A fatal
event (the embedded Temporal server died, a worker stopped by itself) runs the same shutdown and exits 1,
so a supervisor restarts the whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import uvloop
from granian.server.embed import Server
from temporalio.worker import Worker

from app.sandbox.proc import kill_running

log = logging.getLogger("otto.lifecycle")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
SHUTDOWN_MARGIN_S = 10.0  # beyond the grace period: cancelled activities reported, Temporal stopped
CANCEL_SLACK_S = 1.0  # after the grace period, before sandboxed commands are killed (activities cancelled)
EXIT_FAILED = 1

_early: list[int] = []  # signals received before the event loop took over


def catch_early_signals() -> None:
    """Call first thing in a command: a SIGTERM/SIGINT while Otto imports and reads its settings is
    remembered (the service then starts nothing and exits 0) instead of killing the process half-started."""

    def remember(signum: int, _frame: object) -> None:
        _early.append(signum)

    for sig in SIGNALS:
        signal.signal(sig, remember)


class Shutdown:
    """The process's one shutdown: requested once (by a signal or a fatal event), acted on by the service."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.requested = asyncio.Event()
        self.reason = ""
        self.exit_code = 0
        self.serving = False  # past startup: a request is served gracefully (before: startup is cancelled)
        self.forced = False
        self.requested_at: float | None = None
        self._main: asyncio.Task[Any] | None = None
        self._listeners: list[Callable[[], None]] = []

    def on_request(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
        if self.requested.is_set():
            listener()

    def request(self, reason: str, exit_code: int = 0) -> None:
        if self.requested.is_set():
            return
        self.reason, self.exit_code = reason, exit_code
        self.requested_at = time.monotonic()
        # a fatal event was logged as an error where it happened: one error line per cause
        level = logging.INFO if exit_code == 0 else logging.WARNING
        log.log(level, "shutting down: %s (running activities get %g s to finish)", reason, self.grace_s)
        self.requested.set()
        for listener in self._listeners:
            listener()
        _arm_watchdog(self.grace_s + SHUTDOWN_MARGIN_S, self)
        if not self.serving and self._main is not None:
            self._main.cancel()  # still starting: stop starting

    def signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.requested.is_set():
            self.request(f"{name} received")
        elif not self.forced:
            self.forced = True
            log.warning("%s received again: stopping now, cancelling running activities", name)
            self.exit_code = self.exit_code or EXIT_FAILED
            _arm_watchdog(SHUTDOWN_MARGIN_S, self)  # a forced stop has a bound of its own
            if self._main is not None:
                self._main.cancel()

    async def wait(self) -> None:
        await self.requested.wait()


def run_service(main: Callable[[Shutdown], Coroutine[Any, Any, None]], grace_s: float) -> int:
    """Run ``main(shutdown)`` on a uvloop event loop with SIGTERM/SIGINT handled as above; the exit code."""

    async def supervise() -> int:
        shutdown = Shutdown(grace_s)
        shutdown._main = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, shutdown.signalled, sig)
        try:
            if _early:
                shutdown.request(f"{signal.Signals(_early[0]).name} received while starting")
                return 0
            try:
                await main(shutdown)
            except asyncio.CancelledError:
                if not shutdown.requested.is_set():
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                if not shutdown.serving:
                    log.info("startup interrupted; everything started was stopped")
            if shutdown.requested_at is not None:
                took = time.monotonic() - shutdown.requested_at
                log.info("stopped %.2f s after the shutdown began (exit code %d)", took, shutdown.exit_code)
            return shutdown.exit_code
        finally:
            stray = kill_running()  # threads still waiting on a command return now
            if stray:
                log.warning("killed %d sandboxed command(s) still running", stray)
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
                if shutdown.requested.is_set():  # further signals while the interpreter winds down
                    signal.signal(sig, signal.SIG_IGN)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(supervise())


async def serve_until_shutdown(shutdown: Shutdown, server: Server | None, workers: Sequence[Worker]) -> None:
    """Run the web server and the workers until a shutdown is requested (or one of them stops by itself:
    a fatal error, exit 1); then stop them together, each within the grace period."""
    running: dict[asyncio.Task[Any], str] = {
        asyncio.create_task(w.run(), name=f"otto-worker-{w.task_queue}"): _describe(w) for w in workers
    }
    web: asyncio.Task[Any] | None = None
    if server is not None:
        web = asyncio.create_task(server.serve(), name="otto-web")
        running[web] = "the web server"
    shutdown.serving = True
    log.info("running: %s", ", ".join(running.values()))
    requested = asyncio.create_task(shutdown.wait())
    try:
        done, _ = await asyncio.wait([*running, requested], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {requested}:
            error = task.exception() if not task.cancelled() else None
            shutdown.request(f"{running[task]} stopped by itself ({error!r})", exit_code=EXIT_FAILED)
        draining: asyncio.Task[Any] | None = None
        if server is not None and web is not None:
            server.stop()  # type: ignore[no-untyped-call]  # no new connections; in-flight requests finish
            draining = asyncio.create_task(_drain(web, shutdown.grace_s))
        await stop_workers(workers, shutdown.grace_s)
        if draining is not None:
            await draining
    except asyncio.CancelledError:  # a second signal: end everything now, while Temporal still answers
        if server is not None:
            server.stop()  # type: ignore[no-untyped-call]
        await _cancel_everything_else(CANCEL_SLACK_S * 3, keep={web} if web is not None else set())
        raise
    finally:
        requested.cancel()
    for task, what in running.items():
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %r", what, task.exception())


async def _cancel_everything_else(within_s: float, keep: set[asyncio.Task[Any]]) -> None:
    """Cancel every other task but ``keep`` (activities report their cancellation, so Temporal retries them
    elsewhere), wait a moment for them (and ``keep``), then kill the sandboxed commands nobody waits for."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        if task not in keep:
            task.cancel()
    if others:
        await asyncio.wait(others, timeout=within_s)
    kill_running()


async def _drain(web: asyncio.Task[Any], grace_s: float) -> None:
    done, _ = await asyncio.wait([web], timeout=grace_s + CANCEL_SLACK_S)
    if not done:
        log.warning("requests still in flight after %g s; closing them", grace_s)


async def stop_workers(workers: Sequence[Worker], grace_s: float) -> None:
    """Shut the workers down: the activities' first (they get ``grace_s``, then are cancelled and handed
    back), then the workflows' (they answer the queries of activities finishing meanwhile). Once the
    activities are done, the sandboxed commands they were waiting for are killed, so their threads end too."""
    with_activities = [w for w in workers if w.config().get("activities")]
    await _stop_activity_workers(with_activities, grace_s)
    others = [w for w in workers if w not in with_activities]
    if others:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(w.shutdown() for w in others), return_exceptions=True), SHUTDOWN_MARGIN_S / 2
            )
        except TimeoutError:
            log.warning("the workflow worker did not finish shutting down; leaving it")


async def _stop_activity_workers(workers: Sequence[Worker], grace_s: float) -> None:
    if not workers:
        return
    stopping = asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    done, _ = await asyncio.wait([stopping], timeout=grace_s + CANCEL_SLACK_S)
    # the activities finished or were cancelled: nobody waits for these commands' results any more
    killed = kill_running()
    if killed:
        log.warning("killed %d sandboxed command(s) of activities cancelled by the shutdown", killed)
    if not done:
        try:
            await asyncio.wait_for(stopping, SHUTDOWN_MARGIN_S / 2)
        except TimeoutError:
            log.warning("the workers did not finish shutting down; leaving them")


def _describe(worker: Worker) -> str:
    kind = "activities" if worker.config().get("activities") else "workflows"
    return f"the worker on {worker.task_queue} ({kind})"


def _arm_watchdog(after_s: float, shutdown: Shutdown) -> None:
    """The bound on shutting down: after ``after_s``, kill what this process started and exit."""

    def expire() -> None:
        log.error("shutdown did not finish within %g s; killing what is left and exiting", after_s)
        kill_running()
        for pid in _children(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        logging.shutdown()
        os._exit(shutdown.exit_code or EXIT_FAILED)

    timer = threading.Timer(after_s, expire)
    timer.daemon = True
    timer.name = "otto-shutdown-watchdog"
    timer.start()


def _children(parent: int) -> list[int]:
    """Direct children of ``parent`` (from /proc)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            out.append(int(entry.name))
    return out
