"""How Otto's web app is served (``otto serve``, ``otto web``, and Otto's web server in the tests and the
demo): granian's HTTP/1.1 server (Rust: parsing, I/O and response writes happen outside the Python
interpreter) embedded in Otto's own uvloop event loop, so ``otto serve`` runs the Temporal worker in the
same loop. The simulator and the scripted model keep uvicorn (``app.serve_thread``).

Why granian: on a signed webhook that is verified and ignored, uvicorn's pure-Python h11 parser cost about
three times the CPU of uvicorn with httptools on uvloop, and granian's ASGI server another ~20% less
(measured with ``python -m bench intake``); its I/O thread also works beside the interpreter. Settings:
HTTP/1.1 only (GitHub's), no websockets, headers must arrive within 10 s (a slow-header client is cut
off), no access log (Otto logs each acted-on delivery itself; ignored ones at debug level), granian's own
log lines (errors only) propagate to Otto's JSON handler.

Otto's imports leave ~230k long-lived objects (githubkit's schemas, pydantic, FastAPI) that every full
garbage collection would walk again (~0.2 s each, seen as p99 spikes): ``freeze_heap`` after startup moves
them to a generation the collector never scans.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server
from starlette.types import ASGIApp

T = TypeVar("T")

HEADER_READ_TIMEOUT_MS = 10_000
BACKLOG = 2048  # also granian's bound on requests handed to Python at once

# granian's loggers: errors reach Otto's root handler (JSON, redacted); no access log
_LOG_CONFIG: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
    }
}


def web_server(app: ASGIApp, host: str, port: int) -> Server:
    return Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGINL,  # no lifespan: the app holds no startup state
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS, keep_alive=True),
        log_enabled=True,
        log_level=LogLevels.error,
        log_dictconfig=_LOG_CONFIG,
        log_access=False,
    )


async def serve(app: ASGIApp, host: str, port: int) -> None:
    """Serve ``app`` on the running loop until SIGINT or SIGTERM."""
    server = web_server(app, host, port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    try:
        await server.serve()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def freeze_heap() -> None:
    """Collect once, then keep everything alive so far out of future collections."""
    gc.collect()
    gc.freeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a uvloop event loop (the web server, and in ``otto serve`` the worker with it)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@dataclass
class RunningWeb:
    """Otto's web app served in a background thread (tests, the demo)."""

    server: Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(self.server.stop)
        self.thread.join(timeout)


def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1", name: str = "otto-web") -> RunningWeb:
    """Serve ``app`` on a free loopback port from a daemon thread; return once it accepts connections."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    server = web_server(app, host, port)
    loops: list[asyncio.AbstractEventLoop] = []

    def run_loop() -> None:
        # a Runner cancels what is left at the end (e.g. the body-deadline watchdog), as asyncio.run does
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            loops.append(runner.get_loop())
            runner.run(server.serve())

    thread = threading.Thread(target=run_loop, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on {host}:{port}") from None
            time.sleep(0.02)
    return RunningWeb(server, thread, loops[0], host, port)
