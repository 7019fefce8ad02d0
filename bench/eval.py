"""``python -m bench eval`` (``make eval``): Otto over the eval's instance set (``bench/eval_set``), with the
scripted behaviours that prove the harness (``scripted:oracle`` resolves all, ``scripted:null`` none) and
the pilot's A/B (``scripted:first-fails``, pilot on vs off); with ``ANTHROPIC_API_KEY`` set, the real model
too (``OTTO_EVAL_MODEL``, default Otto's), pilot on vs off. ``--quick``: the first instance of each project.

Outputs under ``.cache/bench/eval/<run>/`` (``report.md``, ``report.json``, ``predictions.jsonl``) and a
summary in ``.cache/bench/eval/summary.md``. The repositories are rebuilt from the sdists when missing
(``python -m bench eval-set`` rebuilds and re-checks them on purpose)."""

from __future__ import annotations

import asyncio
import os
import time

from app.eval.instances import Instance, load_instances
from app.eval.main import local_env
from app.eval.report import ab_table, write_outputs
from app.eval.runner import EvalOptions, run_eval
from app.settings import Settings
from bench.common import CACHE, say
from bench.eval_set.build import INSTANCES, build

ROOT = CACHE / "eval"
REPOS = ROOT / "repos"


def ensure_repos(instances: list[Instance]) -> None:
    missing = [i for i in instances if not (REPOS / i.repo_dir_name / ".git").exists()]
    if missing:
        say(f"building the eval's repositories from the sdists into {REPOS} …")
        build(REPOS, CACHE / "src", out=ROOT / "instances.rebuilt.jsonl", say=say)


def runs() -> list[tuple[str, str, bool | None]]:
    plan: list[tuple[str, str, bool | None]] = [
        ("oracle", "scripted:oracle", None),
        ("null", "scripted:null", None),
        ("first-fails-pilot-on", "scripted:first-fails", True),
        ("first-fails-pilot-off", "scripted:first-fails", False),
    ]
    if os.environ.get("ANTHROPIC_API_KEY"):
        model = os.environ.get("OTTO_EVAL_MODEL") or Settings(_env_file=None).model
        plan += [(f"{model}-pilot-on", model, True), (f"{model}-pilot-off", model, False)]
    return plan


async def run_all(instances: list[Instance], quick: bool) -> int:
    if quick:
        seen: set[str] = set()
        instances = [i for i in instances if not (i.repo in seen or seen.add(i.repo))]  # type: ignore[func-returns-value]
    reports: dict[str, dict[str, object]] = {}
    for label, model, pilot in runs():
        out = ROOT / label
        started = time.monotonic()
        say(f"\n--- {label}: {len(instances)} instances, model {model}, pilot {pilot} ---")
        async with local_env(ROOT / ".world" / label, model) as env:
            env.owner = f"eval-{label}"[:39]
            opts = EvalOptions(instances, REPOS, model, out, pilot=pilot, parallel=2, progress=say)
            results = await run_eval(env, opts)
        data = write_outputs(out, results, len(instances), model, pilot)
        reports[label] = data
        took = time.monotonic() - started
        say(
            f"{label}: {data['resolved']} of {data['total']} resolved · ${data['cost_usd']:.4f} · {took:.0f}s"
        )
    lines = ["# Otto eval summary", ""]
    for label, data in reports.items():
        lines.append(f"- {label}: {data['resolved']} of {data['total']} resolved, ${data['cost_usd']:.4f}")
    lines += [
        "",
        "## The pilot's A/B (scripted:first-fails)",
        "",
        ab_table(reports["first-fails-pilot-on"], reports["first-fails-pilot-off"]),
    ]
    real = [k for k in reports if k.endswith("-pilot-on") and not k.startswith("first-fails")]
    for on in real:
        off = on.removesuffix("-on") + "-off"
        lines += [
            f"## The pilot's A/B ({on.removesuffix('-pilot-on')})",
            "",
            ab_table(reports[on], reports[off]),
        ]
    (ROOT / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    say("\n" + "\n".join(lines))
    return 0


def main(flags: list[str]) -> int:
    instances = load_instances(INSTANCES)
    ensure_repos(instances)
    return asyncio.run(run_all(instances, "--quick" in flags))


def main_set(flags: list[str]) -> int:
    """``python -m bench eval-set``: rebuild the repositories and ``instances.jsonl``, checking each."""
    started = time.monotonic()
    rows = build(REPOS, CACHE / "src", say=say)
    projects = len({r["repo"] for r in rows})
    say(f"{len(rows)} instances over {projects} projects, checked, in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main([]))
