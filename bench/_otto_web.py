"""Otto's web process alone, for the intake benchmark: ``python -m bench._otto_web PORT``.

The same app as ``otto web`` (``app.runtime.web_app``: the router, the handlers, the Temporal hand-off),
served by uvicorn in one process on loopback, with uvicorn's access log off (``otto web`` logs every
request at info level; Probot runs with ``logLevel: warn`` too). Settings come from the environment.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from app.engine import connect
from app.runtime import web_app
from app.settings import Settings


async def serve(port: int) -> None:
    settings = Settings(_env_file=None)
    assert settings.temporal_address, "OTTO_TEMPORAL_ADDRESS is required"
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    config = uvicorn.Config(
        web_app(settings, client), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
