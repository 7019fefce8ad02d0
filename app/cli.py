"""``otto serve | web | worker | demo``."""

from __future__ import annotations

import asyncio
import logging

import typer

from app.settings import Settings

cli = typer.Typer(help="Otto: labeled issues become planned, verified draft PRs.", no_args_is_help=True)


log = logging.getLogger("otto.cli")


def _logging(level: str, settings: Settings | None = None) -> None:
    """JSON lines (``OTTO_LOG_JSON``, default on) for the services; plain text for the demo (no settings).
    Either way every line is redacted of the settings' secrets and anything shaped like a token."""
    from app.observability import configure_logging

    if settings is None:
        configure_logging(level, json=False)
    else:
        configure_logging(level, json=settings.log_json, secrets=settings.secret_values())


@cli.command()
def serve(log_level: str = "info") -> None:
    """Web server and a worker in one process (starts Temporal's dev server when no address is set)."""
    from app import webserver

    settings = Settings()
    _logging(log_level, settings)
    webserver.run(_serve(settings, with_worker=True))


@cli.command()
def web(log_level: str = "info") -> None:
    """Only the stateless web process (needs OTTO_TEMPORAL_ADDRESS)."""
    settings = Settings()
    _logging(log_level, settings)
    if not settings.temporal_address:
        raise typer.BadParameter("`otto web` needs OTTO_TEMPORAL_ADDRESS; use `otto serve` for one machine")
    from app import webserver

    webserver.run(_serve(settings, with_worker=False))


@cli.command()
def worker(
    log_level: str = "info",
    queue: list[str] = typer.Option(  # noqa: B008
        [], help="task queue(s) to poll (repeatable); default: all of Otto's (main, model, cpu)"
    ),
) -> None:
    """Only a worker (needs OTTO_TEMPORAL_ADDRESS); run as many as you like, sized per queue."""
    settings = Settings()
    _logging(log_level, settings)
    if not settings.temporal_address:
        raise typer.BadParameter(
            "`otto worker` needs OTTO_TEMPORAL_ADDRESS; use `otto serve` for one machine"
        )
    asyncio.run(_worker(settings, queue))


@cli.command()
def demo(
    keep: bool = typer.Option(False, help="keep everything running after the run (Ctrl-C to end)"),
) -> None:
    """Run Otto end to end against the local GitHub simulator and the scripted model."""
    from app.demo import run_demo

    _logging("warning")
    raise typer.Exit(asyncio.run(run_demo(keep=keep)))


async def _serve(settings: Settings, with_worker: bool) -> None:
    from app import webserver
    from app.engine import temporal_client
    from app.runtime import Services, running_worker, web_app

    async with temporal_client(settings) as client:
        app = web_app(settings, client)
        log.info("web server on http://%s:%d", settings.host, settings.port)
        if not with_worker:
            webserver.freeze_heap()
            await webserver.serve(app, settings.host, settings.port)
            return
        async with running_worker(client, Services.from_settings(settings)):
            webserver.freeze_heap()
            await webserver.serve(app, settings.host, settings.port)


async def _worker(settings: Settings, queues: list[str]) -> None:
    from app.engine import temporal_client
    from app.runtime import Services, workers

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.host)
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    async with temporal_client(settings) as client:
        running = workers(client, Services.from_settings(settings), queues or None)
        await asyncio.gather(*(w.run() for w in running))


def main() -> None:
    cli()
