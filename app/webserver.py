"""How Otto's web process is served (``otto serve`` / ``otto web``): uvicorn with its C HTTP parser
(httptools) on uvloop, no access log, no proxy-header rewriting, and the startup heap frozen out of the
garbage collector's sight.

Why: on a webhook that is verified and ignored, uvicorn's pure-Python h11 parser on asyncio's loop cost
about three times the CPU of httptools on uvloop; and Otto's imports leave ~230k long-lived objects (the
githubkit schemas, pydantic, FastAPI) that every full collection would walk again (~0.2 s a time, seen as
p99 spikes): ``gc.freeze()`` after startup moves them to a generation the collector never scans.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
import uvloop
from starlette.types import ASGIApp

T = TypeVar("T")


def server_config(app: ASGIApp, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    options: dict[str, Any] = {
        "http": "httptools",
        "loop": "uvloop",
        "log_config": None,  # uvicorn's loggers propagate to Otto's (JSON, redacting) root handler
        "access_log": False,  # Otto logs each acted-on delivery itself; ignored ones at debug level
        "proxy_headers": False,  # nothing reads the client address
        "server_header": False,
        "lifespan": "on",
    }
    options.update(overrides)
    return uvicorn.Config(app, host=host, port=port, **options)


def freeze_heap() -> None:
    """Collect once, then keep everything alive so far out of future collections."""
    gc.collect()
    gc.freeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a uvloop event loop (the web server, and in ``otto serve`` the worker with it)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
