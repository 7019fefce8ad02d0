"""Tokens per task for the demo scenario (``app/dev/demo_data/scenario.yaml``: the greeter repository, an
issue planned as two tasks). The scripted model counts tokens as characters / 4 and simulates Anthropic's
prompt cache from the ``cache_control`` breakpoints Otto sends; figures come from the run's own
accounting (``RunState.usage`` and each task's ``usage``), i.e. what the model reported back to Otto.

Prompt tokens = uncached input + cache writes + cache reads; "from cache" = cache reads.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    bench_dir,
    embedded_temporal,
    local_world,
    otto_process,
    run_main,
    say,
    table,
    targets,
    wait_settled,
)


def prompt(u: Any) -> int:
    return int(u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens)


def row(name: str, u: Any) -> list[object]:
    total = prompt(u)
    share = f"{100 * u.cache_read_input_tokens / total:.0f}%" if total else "-"
    return [
        name,
        u.calls,
        total,
        u.input_tokens,
        u.cache_creation_input_tokens,
        u.cache_read_input_tokens,
        share,
        u.output_tokens,
        f"{u.cost_usd:.4f}",
    ]


async def run(quick: bool) -> int:
    from app.dev.demo import ISSUE_BODY, ISSUE_TITLE, OWNER, REPO, SAMPLE_REPO, SCENARIO
    from app.domain.run import RunPhase
    from app.domain.usage import Usage
    from app.engine import connect

    maintainer = "mona"
    root = bench_dir("tokens")
    async with embedded_temporal(root / "temporal") as (address, _pid):
        with local_world(root / "world", SCENARIO) as (world, timed):
            sim = world.sim
            sim.create_user(OWNER, type="Organization")
            sim.create_user(maintainer)
            sim.create_repo(OWNER, REPO, SAMPLE_REPO)
            sim.set_permission(OWNER, REPO, maintainer, "maintain")
            sim.install_app(world.app_id, OWNER)
            repo_id = sim.repo(OWNER, REPO).id
            number = sim.create_issue(OWNER, REPO, ISSUE_TITLE, ISSUE_BODY, maintainer)
            client = await connect(address, "default")
            async with otto_process(world, root, address):
                t0 = time.perf_counter()
                sim.add_label(OWNER, REPO, number, "otto", maintainer)
                states = await wait_settled(client, repo_id, [number], 120)
                wall = time.perf_counter() - t0
    state = states.get(number)
    if state is None or state.phase != RunPhase.WAITING_REVIEW:
        say(f"The demo run did not reach waiting_review: {state.phase.value if state else 'no run'}")
        return 1
    tasks = [(r.task.id, r.usage) for r in state.tasks]
    task_sum = sum((u for _id, u in tasks), Usage())
    run_level = Usage(
        calls=state.usage.calls - task_sum.calls,
        input_tokens=state.usage.input_tokens - task_sum.input_tokens,
        output_tokens=state.usage.output_tokens - task_sum.output_tokens,
        cache_creation_input_tokens=state.usage.cache_creation_input_tokens
        - task_sum.cache_creation_input_tokens,
        cache_read_input_tokens=state.usage.cache_read_input_tokens - task_sum.cache_read_input_tokens,
        cost_usd=state.usage.cost_usd - task_sum.cost_usd,
    )
    table(
        f"Tokens, demo scenario (run took {wall:.1f}s; Otto's default model's prices)",
        ["part", "calls", "prompt", "uncached", "cache write", "cache read", "from cache", "output", "USD"],
        [
            *(row(f"task {tid}", u) for tid, u in tasks),
            row("classify + plan (run level)", run_level),
            row("whole run", state.usage),
        ],
    )
    per_task = prompt(task_sum) / max(1, len(tasks))
    cached = task_sum.cache_read_input_tokens / prompt(task_sum) if prompt(task_sum) else 0.0
    roles: dict[str, int] = {}
    for c in timed.calls:
        roles[c.role] = roles.get(c.role, 0) + 1
    say(
        "Model requests seen by the scripted server: "
        + ", ".join(f"{k} {v}" for k, v in sorted(roles.items()))
    )
    targets(
        [
            ("prompt tokens per task (mean)", "-", f"{per_task:,.0f}", "-"),
            ("share of task prompt tokens served from cache", "-", f"{100 * cached:.0f}%", "-"),
        ]
    )
    say(
        "\nNo target was set for tokens; the scripted model's token counts are estimates (characters / 4), "
        "so the figures compare runs and prompt changes, not a real bill."
    )
    return 0


def main(argv: list[str]) -> int:
    return run_main(lambda: run("--quick" in argv))
