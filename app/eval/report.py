"""What an eval leaves in OUTDIR: ``predictions.jsonl`` (SWE-bench's predictions, to cross-check with its
own harness), ``report.json`` (counts and per-instance figures), ``report.md`` (a table and a plot a person
would rather look at: resolved vs cost per instance, ``resolved_vs_cost.png``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.eval.runner import InstanceResult

PLOT = "resolved_vs_cost.png"


def report_data(
    results: Sequence[InstanceResult], total: int, model: str, pilot: bool | None
) -> dict[str, Any]:
    resolved = [r.instance_id for r in results if r.resolved]
    errors = [r.instance_id for r in results if r.error]
    unresolved = [r.instance_id for r in results if not r.resolved and not r.error]
    return {
        "model": model,
        "pilot": pilot,
        "total": total,
        "submitted": len(results),
        "resolved": len(resolved),
        "resolved_ids": resolved,
        "unresolved_ids": unresolved,
        "error_ids": errors,
        "not_run": total - len(results),
        "cost_usd": round(sum(r.cost_usd for r in results), 6),
        "wall_s": round(sum(r.wall_s for r in results), 2),
        "instances": {
            r.instance_id: {
                "resolved": r.resolved,
                "error": r.error,
                "cost_usd": r.cost_usd,
                "tokens": r.tokens,
                "model_calls": r.model_calls,
                "wall_s": {"total": r.wall_s, "model": r.model_s, "checks": r.checks_s, "otto": r.otto_s},
                "attempts": r.attempts,
                "fix_rounds": r.fix_rounds,
                "pilot_decisions": r.pilot_decisions,
                "replans": r.replans,
                "pull_requests": r.pull_requests,
                "phase": r.phase,
                "mission_control": r.mission_control,
                "failed_tests": r.failed_tests,
            }
            for r in results
        },
    }


def plot(results: Sequence[InstanceResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for resolved, colour, label in ((True, "#2da44e", "resolved"), (False, "#cf222e", "not resolved")):
        xs = [r.cost_usd for r in results if r.resolved == resolved]
        ys = [r.wall_s for r in results if r.resolved == resolved]
        ax.scatter(xs, ys, c=colour, label=label, s=28, alpha=0.85)
    ax.set_xlabel("cost per instance (USD)")
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"{sum(r.resolved for r in results)} of {len(results)} resolved")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pilot_words(pilot: bool | None) -> str:
    return "as each instance sets it" if pilot is None else ("on" if pilot else "off")


def markdown(data: dict[str, Any], results: Sequence[InstanceResult]) -> str:
    pct = 100 * data["resolved"] / data["total"] if data["total"] else 0.0
    lines = [
        f"# Otto eval: {data['resolved']} of {data['total']} resolved ({pct:.0f}%)",
        "",
        f"Model `{data['model']}` · pilot {_pilot_words(data['pilot'])}"
        f" · ${data['cost_usd']:.4f} · {data['wall_s']:.0f} s of instance time"
        + (f" · {data['not_run']} not run (budget)" if data["not_run"] else "")
        + (f" · {len(data['error_ids'])} harness error(s)" if data["error_ids"] else ""),
        "",
        f"![resolved vs cost]({PLOT})",
        "",
        "| instance | resolved | cost | wall (model / checks / Otto) | attempts | fix rounds | pilot | PRs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mark = "⚠️ " + r.error[:60] if r.error else ("✅" if r.resolved else "❌")
        name = f"[{r.instance_id}]({r.mission_control})" if r.mission_control else r.instance_id
        lines.append(
            f"| {name} | {mark} | ${r.cost_usd:.4f} | {r.wall_s:.0f}s ({r.model_s:.0f} / {r.checks_s:.0f} / "
            f"{r.otto_s:.0f}) | {r.attempts} | {r.fix_rounds} | {', '.join(r.pilot_decisions) or '—'} | "
            f"{r.pull_requests} |"
        )
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path, results: Sequence[InstanceResult], total: int, model: str, pilot: bool | None
) -> dict[str, Any]:
    data = report_data(results, total, model, pilot)
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for r in results:
            if not r.error:
                row = {
                    "instance_id": r.instance_id,
                    "model_name_or_path": f"otto+{model}",
                    "model_patch": r.model_patch,
                }
                f.write(json.dumps(row) + "\n")
    (out / "report.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    plot(results, out / PLOT)
    (out / "report.md").write_text(markdown(data, results), encoding="utf-8")
    return data


def ab_table(on: dict[str, Any], off: dict[str, Any]) -> str:
    """The pilot's A/B over the same instances, side by side (two ``report.json`` contents)."""

    def row(name: str, data: dict[str, Any]) -> str:
        inst = data["instances"].values()
        decisions = [d for i in inst for d in i["pilot_decisions"]]
        actions = {a: sum(1 for d in decisions if d.endswith(f": {a}")) for a in ("retry", "skip", "replan")}
        fired = sum(1 for i in inst if i["pilot_decisions"])
        wall = sum(i["wall_s"]["total"] for i in inst)
        said = ", ".join(f"{n} {a}" for a, n in actions.items() if n) or "—"
        return (
            f"| {name} | {data['resolved']} of {data['total']} | ${data['cost_usd']:.4f} | {wall:.0f}s | "
            f"{fired} | {said} | {sum(i['replans'] for i in inst)} |"
        )

    return (
        "\n".join(
            [
                "| pilot | resolved | cost | wall | instances the pilot fired on | its decisions | replans |",
                "|---|---|---|---|---|---|---|",
                row("on", on),
                row("off", off),
            ]
        )
        + "\n"
    )
