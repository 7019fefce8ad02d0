"""`otto eval` from the command line: the local world (simulator, scripted model, Temporal's dev server,
Otto) started for the eval, the instances run, the outputs written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import SecretStr

from app.dev.local import LocalWorld, running_otto
from app.engine import EmbeddedTemporal, connect, ensure_retention
from app.eval import scripted
from app.eval.report import write_outputs
from app.eval.runner import EvalEnv, EvalOptions, run_eval


@contextlib.asynccontextmanager
async def local_env(root: Path, model: str) -> AsyncIterator[EvalEnv]:
    """A world for the eval under ``root``: a real model (``ANTHROPIC_API_KEY``) or the scripted one."""
    world = LocalWorld.start(root / "world")
    temporal = EmbeddedTemporal(root / "temporal")
    try:
        address = await temporal.start()
        overrides: dict[str, object] = {"max_active_runs_per_installation": 64}
        if not model.startswith("scripted:"):
            key = os.environ.get("ANTHROPIC_API_KEY")
            if not key:
                raise SystemExit(
                    f"--model {model} needs ANTHROPIC_API_KEY (or use scripted:oracle / scripted:null)"
                )
            overrides |= {"anthropic_api_key": SecretStr(key), "anthropic_base_url": None, "model": model}
        settings = world.settings(root / "otto", address, **overrides)
        client = await connect(address, settings.temporal_namespace)
        await ensure_retention(client, settings.temporal_namespace)
        async with running_otto(world, settings, client) as web:
            linked = settings if settings.public_url else settings.model_copy(update={"public_url": web.url})
            yield EvalEnv(world, linked, client)
    finally:
        world.stop()
        temporal.stop()


async def main(opts: EvalOptions, keep: bool = False) -> int:
    behaviour = opts.scripted
    if behaviour is not None and behaviour not in scripted.BEHAVIOURS:
        raise SystemExit(
            f"unknown scripted model {opts.model!r} (known: "
            + ", ".join(f"scripted:{b}" for b in scripted.BEHAVIOURS)
            + ")"
        )
    started = time.monotonic()
    async with local_env(opts.out / ".world", opts.model) as env:
        results = await run_eval(env, opts)
        data = write_outputs(opts.out, results, len(opts.instances), opts.model, opts.pilot)
        opts.progress(
            f"{data['resolved']} of {data['total']} resolved · ${data['cost_usd']:.4f} · "
            f"{time.monotonic() - started:.0f}s · {opts.out / 'report.md'}"
        )
        if keep:  # the report's Mission Control links answer while the world runs
            opts.progress("Mission Control and the simulator keep running; press Ctrl-C to stop.")
            await asyncio.Event().wait()
    return 0
