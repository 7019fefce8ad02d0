"""What Otto answers on a task's PR (pure: texts from the run's state)."""

from __future__ import annotations

from app.domain.run import TaskRecord


def _failing(rec: TaskRecord) -> str:
    if rec.failures:
        return f"{rec.failures} failing test{'' if rec.failures == 1 else 's'}"
    return "its checks fail"


def refused_merge(reason: str, rec: TaskRecord, approver: str, log_url: str | None) -> str:
    """An approval that merged nothing, and what to do instead."""
    log = f" ([log]({log_url}))" if log_url else ""
    if reason == "running":
        return (
            f"@{approver} approved, but task `{rec.task.id}` is running again (attempt {rec.attempts}); "
            "nothing was merged. Approve its new head when the attempt has finished."
        )
    if reason == "skipped":
        return (
            f"@{approver} approved, but the gate pilot skipped task `{rec.task.id}` ({_failing(rec)}), so "
            "nothing was merged: this PR stays open as a failing draft. Comment `/otto retry <guidance>` to "
            "run the task again, push a fix yourself, or — as a writer — comment `/otto merge` to "
            "merge it as it is."
        )
    if reason == "abandoned":
        return f"@{approver} approved, but this pull request was closed; nothing was merged."
    red = [f"Otto's checks: {_failing(rec)}{log}"] if rec.status.value in ("failed", "error") else []
    return _red(approver, red)


def _red(approver: str, red: list[str]) -> str:
    what = "\n".join(f"- ❌ {line}" for line in red) or "- ❌ the checks fail"
    return (
        f"@{approver} approved, but nothing was merged because the checks are red:\n\n{what}\n\n"
        "To continue: comment `/otto retry <guidance>` to run the task again, or push a fix to this branch "
        "and approve the new head. A writer can comment `/otto merge` to merge it as it is, on purpose."
    )


def red_on_github(approver: str, failing: list[str], message: str) -> str:
    """GitHub says the required checks (of other apps) fail, or refuses the merge for its rules."""
    red = [f"`{name}` fails" for name in failing] or [message or "GitHub's required checks do not pass"]
    return _red(approver, red)


def merged_on_purpose(merger: str, rec: TaskRecord) -> str:
    return (
        f"Merged on purpose by @{merger} with `/otto merge`, although {_failing(rec)}"
        " (Otto's own checks were red)."
        if rec.status.value in ("failed", "error", "skipped")
        else f"Merged on purpose by @{merger} with `/otto merge`."
    )


def merged_note(merged_by: str, approver: str | None, override_by: str | None) -> str:
    """The status comment's words for a merge: "merged by otto[bot] on @mona's approval"."""
    if override_by:
        return (
            f"merged by {merged_by or 'Otto'} on purpose at @{override_by}'s `/otto merge` (checks were red)"
        )
    if approver:
        return f"merged by {merged_by or 'Otto'} on @{approver}'s approval"
    return f"merged by {merged_by}" if merged_by else "merged"
