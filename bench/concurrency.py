"""50 runs started together: 50 issues labeled at once (one webhook each, sent concurrently by the GitHub
simulator), each planned as one task whose agent creates one file; verify ``true``.

Reports whether all reach ``waiting_review``, how long that took, the peak RSS of Otto's process tree
(``otto serve``: web + worker in one process, plus the git / agent / check processes it spawns) and,
separately, of Temporal's dev server, sampled from /proc every 200 ms; and the Temporal history of each
run (events and bytes, from ``fetch_history``) and of each delivery workflow.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import (
    RssSampler,
    bench_dir,
    embedded_temporal,
    local_world,
    mib,
    otto_process,
    percentile,
    run_main,
    say,
    table,
    targets,
    verdict,
    wait_settled,
)

OWNER, REPO, MAINTAINER = "busy-org", "greeter", "mona"
GIB = 1024**3

SCENARIO: dict[str, Any] = {
    "classify": [{"json": {"actionable": True, "summary": "Add a note.", "questions": []}}],
    "plan": [
        {
            "json": {
                "summary": "One task.",
                "tasks": [
                    {
                        "id": "t1",
                        "title": "Add a note",
                        "intent": "Add NOTE.md with one line.",
                        "acceptance": ["NOTE.md exists"],
                        "files": ["NOTE.md"],
                        "depends_on": [],
                    }
                ],
            }
        }
    ],
    "agent": {
        "*": [
            {
                "tool_use": {
                    "name": "str_replace_based_edit_tool",
                    "input": {"command": "create", "path": "NOTE.md", "file_text": "A note.\n"},
                }
            },
            {"text": "Added NOTE.md."},
        ]
    },
}


def sizes(events: list[Any]) -> tuple[int, int]:
    return len(events), sum(e.ByteSize() for e in events)


async def run(quick: bool) -> int:
    from app.dev.demo import SAMPLE_REPO
    from app.domain.run import RunPhase
    from app.engine import connect
    from app.workflows.run import RunWorkflow

    n = 5 if quick else 50
    root = bench_dir("concurrency")
    files = dict(SAMPLE_REPO) | {".github/otto.yml": 'verify: "true"\n'}
    async with embedded_temporal(root / "temporal") as (address, temporal_pid):
        with local_world(root / "world", SCENARIO) as (world, _timed):
            sim = world.sim
            sim.create_user(OWNER, type="Organization")
            sim.create_user(MAINTAINER)
            sim.create_repo(OWNER, REPO, files)
            sim.set_permission(OWNER, REPO, MAINTAINER, "write")
            sim.install_app(world.app_id, OWNER)
            repo_id = sim.repo(OWNER, REPO).id
            numbers = [
                sim.create_issue(OWNER, REPO, f"Note {i}", "Add a note.", MAINTAINER) for i in range(n)
            ]
            client = await connect(address, "default")
            async with otto_process(world, root, address) as (proc, _url):
                with RssSampler({"otto": proc.pid, "temporal": temporal_pid}) as rss:
                    say(f"Labeling {n} issues at once …")
                    t0 = time.perf_counter()

                    def label(number: int) -> int | None:
                        code: int | None = sim.add_label(OWNER, REPO, number, "otto", MAINTAINER).status_code
                        return code

                    with ThreadPoolExecutor(max_workers=n) as pool:
                        codes = await asyncio.gather(
                            *(asyncio.wrap_future(pool.submit(label, k)) for k in numbers)
                        )
                    acked = time.perf_counter() - t0
                    states = await wait_settled(client, repo_id, numbers, 120 if quick else 300)
                    wall = time.perf_counter() - t0
                histories = []
                for k in numbers:
                    h = await client.get_workflow_handle_for(
                        RunWorkflow.run, f"otto/{repo_id}/{k}"
                    ).fetch_history()
                    histories.append(sizes(list(h.events)))
                delivery_sizes = []
                for d in sim.deliveries_of("issues", "labeled"):
                    h = await client.get_workflow_handle(f"delivery/{d.id}").fetch_history()
                    delivery_sizes.append(sizes(list(h.events)))

    done = [k for k in numbers if k in states and states[k].phase == RunPhase.WAITING_REVIEW]
    phases: dict[str, int] = {}
    for k in numbers:
        phase = states[k].phase.value if k in states else "not started"
        phases[phase] = phases.get(phase, 0) + 1
    say(
        f"\nWebhooks answered: {sorted(set(codes), key=str)} (all {n} sent concurrently, answered within "
        f"{acked:.2f}s); runs: " + ", ".join(f"{v} {k}" for k, v in sorted(phases.items()))
    )
    events = [e for e, _b in histories]
    nbytes = [b for _e, b in histories]
    table(
        "Temporal history per workflow",
        ["workflow", "count", "events mean", "events max", "bytes mean", "bytes max"],
        [
            [
                "RunWorkflow",
                len(histories),
                sum(events) / len(events),
                max(events),
                sum(nbytes) / len(nbytes),
                max(nbytes),
            ],
            [
                "DeliveryWorkflow",
                len(delivery_sizes),
                sum(e for e, _ in delivery_sizes) / max(1, len(delivery_sizes)),
                max((e for e, _ in delivery_sizes), default=0),
                sum(b for _, b in delivery_sizes) / max(1, len(delivery_sizes)),
                max((b for _, b in delivery_sizes), default=0),
            ],
        ],
    )
    table(
        "Peak RSS (MiB; a tree's figure sums its processes' RSS)",
        ["process", "tree peak", "main process peak", "most processes at once"],
        [
            [
                "otto serve (web + worker + children)",
                mib(rss.peaks["otto"]),
                mib(rss.peak_root_only["otto"]),
                rss.peak_processes["otto"],
            ],
            [
                "temporal dev server",
                mib(rss.peaks["temporal"]),
                mib(rss.peak_root_only["temporal"]),
                rss.peak_processes["temporal"],
            ],
        ],
    )
    per_run = wall / n
    targets(
        [
            (
                f"{n} runs reach waiting_review",
                "all",
                f"{len(done)}/{n} in {wall:.1f}s ({per_run:.2f}s per run)",
                verdict(len(done) == n, f"{n - len(done)} did not within the time limit"),
            ),
            (
                "peak RSS of Otto's processes",
                "< 1 GiB",
                f"{mib(rss.peaks['otto']) or 0:.0f} MiB (Temporal {mib(rss.peaks['temporal']) or 0:.0f} MiB)",
                verdict(rss.peaks["otto"] < GIB, f"{(rss.peaks['otto'] or 0) / GIB:.2f} GiB"),
            ),
            (
                "Temporal history per run (p50 events / bytes)",
                "-",
                f"{percentile(events, 50) or 0:.0f} events / {(percentile(nbytes, 50) or 0) / 1024:.1f} KiB",
                "-",
            ),
        ]
    )
    return 0 if len(done) == n else 1


def main(argv: list[str]) -> int:
    return run_main(lambda: run("--quick" in argv))
