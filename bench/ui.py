"""Mission Control page timings: the runs list with 1,000 runs and an attempt page with a 300-step transcript.

Otto's web app (Mission Control mounted alone: no Temporal needed to read) on loopback, reading from an
artifact store filled the way Otto's activities fill it (``bench.ui_data``): 1,000 run snapshots over 20
repositories of the GitHub simulator (permissions asked of the simulator with the App's token, as in
production, then reused for ``OTTO_UI_PERMISSION_TTL_S``), one of them with a 300-step transcript (15 results
of 60 kB). Server time is the app's own ``Server-Timing`` header (routing, session, permission, store reads,
rendering); wall time adds HTTP on loopback. "cached" reuses the catalog between refreshes (the default,
``OTTO_UI_CATALOG_REFRESH_S=1``); "refresh" lists the store on every request (the worst case).
``--s3`` puts the store on moto's S3 server instead of a local directory. Target: under 300 ms server time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from bench.common import bench_dir, ms, percentile, run_main, say, table, targets

RUNS = 1_000
REPOS = 20
STEPS = 300
TARGET_MS = 300.0


async def measure(http: httpx.AsyncClient, path: str, n: int) -> tuple[list[float], list[float], int]:
    server, wall = [], []
    size = 0
    for _ in range(n):
        started = time.perf_counter()
        resp = await http.get(path)
        wall.append(time.perf_counter() - started)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
        timing = resp.headers["server-timing"]
        server.append(float(timing.split("dur=")[1]) / 1000)
        size = len(resp.content)
    return server, wall, size


async def run(quick: bool, s3: bool) -> int:
    from fastapi import FastAPI

    from app import web
    from app.artifacts import ArtifactStore, LocalArtifactStore
    from app.dev.local import LocalWorld
    from app.domain.run import RepoRef
    from app.serve_thread import serve_in_thread
    from bench import ui_data
    from tests.mission_control import sign_in
    from tests.s3_server import running_s3

    root = bench_dir("ui")
    world = LocalWorld.start(root / "world")
    try:
        sim = world.sim
        sim.create_user("mona")
        repos = []
        for i in range(REPOS):
            owner = f"org{i:02d}"
            sim.create_user(owner, type="Organization")
            r = sim.create_repo(owner, "service", {"README.md": "x"})
            sim.set_permission(owner, "service", "mona", "write")
            inst = sim.install_app(world.app_id, owner)
            repos.append(RepoRef(installation_id=inst, owner=owner, name="service", repo_id=r.id))
        s3_server = None
        if s3:
            s3_context = running_s3(root / "s3")
            s3_server = await s3_context.__aenter__()
        try:
            store: ArtifactStore = (
                s3_server.store("bench-ui", "otto") if s3_server else LocalArtifactStore(root / "artifacts")
            )
            say(f"Writing {RUNS} run snapshots over {REPOS} repositories to {store.describe()}…")
            started = time.monotonic()
            now = datetime.now(UTC)
            phases = ui_data.PHASES
            for n in range(RUNS):
                ui_data.run(
                    store,
                    repos[n % REPOS],
                    n + 1,
                    phase=phases[n % len(phases)],
                    created=now - timedelta(minutes=n),
                    steps=STEPS if n == 0 else 0,
                )
            say(f"  written in {time.monotonic() - started:.1f}s")
            rows: list[list[object]] = []
            results: dict[str, float] = {}
            for mode, refresh_s in (("cached", 1.0), ("refresh", 0.0)):
                settings = world.settings(root / "otto", None, ui_catalog_refresh_s=refresh_s)
                app = FastAPI()
                web.mount(app, settings, None, store)
                server = serve_in_thread(app, name="mission-control")
                try:
                    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                        await sign_in(http, "mona")
                        first = repos[0]
                        attempt = f"/runs/{first.repo_id}/1/tasks/t1/attempts/1"
                        pages = {
                            "runs list (page 1 of 20)": "/runs",
                            "runs list, repo filter": f"/runs?repo={first.full_name}&state=active",
                            "runs list, page 10": "/runs?page=10",
                            "run page": f"/runs/{first.repo_id}/1",
                            "attempt, 300 steps (bounded)": attempt,
                            "attempt, 300 steps (?all=1)": attempt + "?all=1",
                        }
                        for path in pages.values():  # warm-up: permissions, catalog, parsed transcript
                            await http.get(path)
                        n = 8 if quick else 40
                        for name, path in pages.items():
                            server_s, wall_s, size = await measure(http, path, n)
                            p50, p95 = ms(percentile(server_s, 50)), ms(percentile(server_s, 95))
                            results[f"{mode}: {name}"] = p95 or 0.0
                            rows.append(
                                [
                                    f"{mode}: {name}",
                                    f"{p50:.1f}",
                                    f"{p95:.1f}",
                                    f"{max(server_s) * 1000:.1f}",
                                    f"{(percentile(wall_s, 50) or 0) * 1000:.1f}",
                                    f"{size / 1024:.0f}",
                                ]
                            )
                finally:
                    server.stop()
            table(
                f"Mission Control server time (ms), {RUNS} runs, {STEPS}-step transcript, {store.describe()}",
                ["page", "p50", "p95", "max", "wall p50", "KiB"],
                rows,
            )
            worst_list = max(v for k, v in results.items() if k.startswith("cached: runs list"))
            worst_attempt = results["cached: attempt, 300 steps (bounded)"]
            targets(
                [
                    (
                        "runs list, 1,000 runs (p95)",
                        f"< {TARGET_MS:.0f} ms",
                        f"{worst_list:.1f} ms",
                        _verdict(worst_list),
                    ),
                    (
                        "attempt, 300 steps (p95)",
                        f"< {TARGET_MS:.0f} ms",
                        f"{worst_attempt:.1f} ms",
                        _verdict(worst_attempt),
                    ),
                ]
            )
            return 0 if max(worst_list, worst_attempt) < TARGET_MS else 1
        finally:
            if s3_server is not None:
                await s3_context.__aexit__(None, None, None)
    finally:
        world.stop()


def _verdict(value_ms: float) -> str:
    return "met" if value_ms < TARGET_MS else "MISSED"


def main(flags: list[str]) -> int:
    quick = "--quick" in flags
    s3 = "--s3" in flags

    async def go() -> int:
        return await run(quick, s3)

    return run_main(go)
