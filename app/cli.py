"""``otto serve | web | worker | demo | setup``."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from app.settings import Settings

if TYPE_CHECKING:
    from app.lifecycle import Shutdown

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
    from app.lifecycle import catch_early_signals, run_service

    catch_early_signals()
    settings = Settings()
    _logging(log_level, settings)
    raise typer.Exit(
        run_service(lambda shutdown: _serve(settings, True, shutdown), settings.shutdown_grace_s)
    )


@cli.command()
def web(log_level: str = "info") -> None:
    """Only the stateless web process (needs OTTO_TEMPORAL_ADDRESS)."""
    from app.lifecycle import catch_early_signals, run_service

    catch_early_signals()
    settings = Settings()
    _logging(log_level, settings)
    if not settings.temporal_address:
        raise typer.BadParameter("`otto web` needs OTTO_TEMPORAL_ADDRESS; use `otto serve` for one machine")
    raise typer.Exit(
        run_service(lambda shutdown: _serve(settings, False, shutdown), settings.shutdown_grace_s)
    )


@cli.command()
def worker(
    log_level: str = "info",
    queue: list[str] = typer.Option(  # noqa: B008
        [], help="task queue(s) to poll (repeatable); default: all of Otto's (main, model, cpu)"
    ),
) -> None:
    """Only a worker (needs OTTO_TEMPORAL_ADDRESS); run as many as you like, sized per queue."""
    from app.lifecycle import catch_early_signals, run_service

    catch_early_signals()
    settings = Settings()
    _logging(log_level, settings)
    if not settings.temporal_address:
        raise typer.BadParameter(
            "`otto worker` needs OTTO_TEMPORAL_ADDRESS; use `otto serve` for one machine"
        )
    raise typer.Exit(
        run_service(lambda shutdown: _worker(settings, queue, shutdown), settings.shutdown_grace_s)
    )


@cli.command()
def demo(
    keep: bool = typer.Option(False, help="keep everything running after the run (Ctrl-C to end)"),
) -> None:
    """Run Otto end to end against the local GitHub simulator and the scripted model."""
    from app.dev.demo import run_demo

    _logging("warning")
    raise typer.Exit(asyncio.run(run_demo(keep=keep)))


@cli.command()
def setup(
    webhook_url: str = typer.Option(
        ..., help="where GitHub will send webhooks: https://<your host>/webhooks"
    ),
    github_url: str = typer.Option("https://github.com", help="GitHub Enterprise Server: https://<host>"),
    org: str | None = typer.Option(None, help="register the App for this organization, not your account"),
    name: str | None = typer.Option(None, help="the App's name (default: app.yml's; unique on GitHub)"),
    manifest: Path | None = typer.Option(None, help="the App manifest (default: app.yml)"),  # noqa: B008
    env_file: Path = typer.Option(Path(".env"), help="the credentials are merged into this file"),  # noqa: B008
    key_file: Path | None = typer.Option(  # noqa: B008
        None, help="where to write the private key (default: .otto/github-app-<id>.private-key.pem)"
    ),
    port: int = typer.Option(0, help="port of the local registration page on 127.0.0.1 (0: any free one)"),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="open the page in a browser"),
    timeout: float = typer.Option(3600.0, help="give up after this many seconds"),
) -> None:
    """Register Otto's GitHub App from its manifest (GitHub's manifest flow) and write its credentials."""
    import os
    import sys
    import webbrowser

    from app.github_setup import GitHubHost, ManifestSetup, SetupError

    source = manifest or next(
        (p for p in (Path("app.yml"), Path(__file__).resolve().parent.parent / "app.yml") if p.is_file()),
        Path("app.yml"),
    )
    try:
        flow = ManifestSetup(
            source.read_text(),
            webhook_url,
            GitHubHost.from_url(github_url),
            env_file,
            key_file=key_file,
            org=org,
            name=name,
            port=port,
        )
        url = flow.start()
    except (OSError, SetupError) as exc:
        typer.echo(f"otto setup: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        typer.echo(f"Open this page in a browser signed in to {flow.host.web_url} and create the App:")
        typer.echo(url, nl=True)
        graphical = sys.platform in ("darwin", "win32") or any(
            os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY")
        )
        if open_browser and graphical:  # never a console browser taking over this terminal
            webbrowser.open(url)
        if not flow.wait(timeout):
            typer.echo("otto setup: timed out waiting for GitHub", err=True)
            raise typer.Exit(1)
    finally:
        flow.stop()
    if flow.result is None:
        typer.echo(f"otto setup: {flow.error}", err=True)
        raise typer.Exit(1)
    app, env = flow.result.app, flow.result.env_file
    typer.echo(f"Registered the GitHub App {app.name!r} (id {app.id}, slug {app.slug}).")
    typer.echo(f"Private key: {flow.result.key_file} (mode 0600)")
    typer.echo(
        f"Wrote OTTO_GITHUB_APP_ID, OTTO_GITHUB_APP_SLUG, OTTO_GITHUB_PRIVATE_KEY_PATH, OTTO_WEBHOOK_SECRET, "
        f"OTTO_GITHUB_CLIENT_ID, OTTO_GITHUB_CLIENT_SECRET and OTTO_GITHUB_API_URL to {env} (mode 0600)."
    )
    typer.echo("Install it on your repositories:")
    typer.echo(app.install_url)


async def _serve(settings: Settings, with_worker: bool, shutdown: Shutdown) -> None:
    from app import webserver
    from app.engine import temporal_client
    from app.health import Probes
    from app.lifecycle import EXIT_FAILED, serve_until_shutdown
    from app.runtime import Services, web_app, workers

    probes: list[Probes] = []

    def engine_died(code: int | None) -> None:  # the watch logged it: one error line
        for p in probes:
            p.engine_died(code)
        shutdown.request(f"the embedded Temporal server exited (code {code})", exit_code=EXIT_FAILED)

    async with temporal_client(settings, on_engine_death=engine_died) as client:
        probes.append(Probes(settings, client))
        shutdown.on_request(lambda: setattr(probes[0], "shutting_down", True))
        app = web_app(settings, client, probes=probes[0])
        ws = workers(client, Services.from_settings(settings)) if with_worker else []
        server = webserver.web_server(app, settings.host, settings.port)
        log.info("web server on http://%s:%d", settings.host, settings.port)
        webserver.freeze_heap()
        await serve_until_shutdown(shutdown, server, ws)


async def _worker(settings: Settings, queues: list[str], shutdown: Shutdown) -> None:
    from app.engine import temporal_client
    from app.lifecycle import serve_until_shutdown
    from app.runtime import Services, workers

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.host)
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    async with temporal_client(settings) as client:
        await serve_until_shutdown(
            shutdown, None, workers(client, Services.from_settings(settings), queues or None)
        )


def main() -> None:
    # Otto's git runs with an environment Otto controls; a GIT_DIR, GIT_INDEX_FILE, GIT_CONFIG_* … inherited
    # from the shell that started Otto would point its git somewhere else.
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        del os.environ[key]
    cli()


@cli.command(name="eval")
def eval_(
    instances: Path = typer.Argument(..., help="instances in SWE-bench's format, one JSON object a line"),  # noqa: B008
    repos: Path = typer.Option(..., help="one git repository per repo, named owner__name"),  # noqa: B008
    model: str = typer.Option(
        ..., help="a model name (needs ANTHROPIC_API_KEY), or scripted:oracle|null|first-fails"
    ),
    out: Path = typer.Option(..., help="where predictions.jsonl, report.json and report.md go"),  # noqa: B008
    pilot: str = typer.Option("", help="on or off (default: each instance's setting)"),
    parallel: int = typer.Option(1, min=1, help="instances at once"),
    budget_usd: float | None = typer.Option(None, help="no instance starts once the eval has spent this"),
    instance_timeout_s: float = typer.Option(1800.0, help="an instance's run gets this long to settle"),
    keep: bool = typer.Option(
        False, help="keep Mission Control running after the eval (the report links to it)"
    ),
) -> None:
    """Measure Otto on SWE-bench-style instances in a local world, scored like SWE-bench (resumable)."""
    from app.eval.instances import load_instances
    from app.eval.main import main
    from app.eval.runner import EvalOptions

    if pilot not in ("", "on", "off"):
        raise typer.BadParameter("--pilot is on or off")
    _logging("warning")
    opts = EvalOptions(
        instances=load_instances(instances),
        repos=repos,
        model=model,
        out=out,
        pilot=None if not pilot else pilot == "on",
        parallel=parallel,
        budget_usd=budget_usd,
        instance_timeout_s=instance_timeout_s,
    )
    raise typer.Exit(asyncio.run(main(opts, keep)))


@cli.command(name="try")
def try_(
    path: Path = typer.Argument(..., help="a local git repository (its HEAD is what Otto works on)"),  # noqa: B008
    text: str = typer.Argument("", help="the issue: its first line is the title"),
    issue_file: Path | None = typer.Option(None, help="read the issue from this file instead"),  # noqa: B008
    model: str = typer.Option("", help="the model (default: Otto's; needs ANTHROPIC_API_KEY)"),
    scenario: Path | None = typer.Option(  # noqa: B008
        None, help="a scripted-model scenario (YAML) instead of a real model"
    ),
    keep: bool = typer.Option(
        False, help="keep the simulator, Otto and Mission Control running after the run"
    ),
) -> None:
    """Otto on a local repository without a GitHub App: the run live here, its branches fetched back."""
    from app.eval.trying import main_try
    from app.settings import Settings

    body = issue_file.read_text(encoding="utf-8") if issue_file is not None else text
    if not body.strip():
        raise typer.BadParameter("say what the issue is: a text argument or --issue-file")
    _logging("warning")
    chosen = model or Settings(_env_file=None).model
    raise typer.Exit(asyncio.run(main_try(path, body, chosen, scenario, keep)))
