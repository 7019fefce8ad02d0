"""Markdown Otto posts: the issue's status comment, task PR bodies, refusals. Pure functions of state."""

from __future__ import annotations

import re
from collections.abc import Sequence

import jinja2

from app.domain.links import labeling_of
from app.domain.pilot import TaskDecision
from app.domain.plan import PlannedTask
from app.domain.run import AttemptRecord, RunPhase, RunState, TaskRecord, TaskStatus
from app.domain.sanitize import neutralise_markdown, quote_markdown

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("app", "templates"),
    autoescape=False,  # noqa: S701 -- markdown / plain text for GitHub and the model, not HTML
    keep_trailing_newline=True,
    trim_blocks=False,
    undefined=jinja2.StrictUndefined,
)

_HEADLINES = {
    RunPhase.STARTING: "🤖 Otto is starting…",
    RunPhase.QUEUED: "🤖 Otto: queued",
    RunPhase.PLANNING: "🤖 Otto: planning…",
    RunPhase.PLAN_REVIEW: "🤖 Otto: the plan is ready for your approval",
    RunPhase.RUNNING: "🤖 Otto: working on the plan",
    RunPhase.WAITING_REVIEW: "🤖 Otto: waiting for your review",
    RunPhase.NEEDS_INFO: "🤖 Otto needs more information",
    RunPhase.FAILED: "🤖 Otto: the run failed",
    RunPhase.CANCELLED: "🤖 Otto: the run was cancelled",
    RunPhase.DONE: "🤖 Otto: done",
}


def headline(state: RunState) -> str:
    who = state.stop_requested_by
    if who and state.phase == RunPhase.CANCELLED:
        return f"⏹️ Otto: stopped by @{who}"
    if who and not state.phase.final:
        return f"⏹️ Otto: stopping (asked by @{who})…"
    return _HEADLINES[state.phase]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pr_summary(state: RunState) -> str:
    """The PRs by their real state: "2 ready for review, 1 failing (1 test), 1 skipped"."""
    parts: list[str] = []
    with_pr = [r for r in state.tasks if r.pr_number is not None]
    ready = [r for r in with_pr if r.status == TaskStatus.PASSED]
    failing = [r for r in with_pr if r.status in (TaskStatus.FAILED, TaskStatus.ERROR)]
    merged = [r for r in state.tasks if r.status == TaskStatus.MERGED]
    skipped = [r for r in state.tasks if r.status == TaskStatus.SKIPPED]
    if ready:
        parts.append(f"{len(ready)} ready for review")
    if failing:
        tests = sum(r.failures or 0 for r in failing)
        parts.append(f"{len(failing)} failing" + (f" ({plural(tests, 'test')})" if tests else ""))
    if merged:
        parts.append(f"{len(merged)} merged")
    if skipped:
        parts.append(f"{len(skipped)} skipped")
    return ", ".join(parts)


_TASK_STATE = {
    TaskStatus.PENDING: "⏳ pending",
    TaskStatus.RUNNING: "🔄 running",
    TaskStatus.PASSED: "✅ verified",
    TaskStatus.FAILED: "❌ verification failed",
    TaskStatus.ERROR: "⚠️ error",
    TaskStatus.SKIPPED: "⏭️ skipped",
    TaskStatus.MERGED: "🟣 merged",
    TaskStatus.ABANDONED: "🚫 PR closed",
}


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """Text safe inside a one-line inline code span."""
    return " ".join(str(text).replace("`", "ˋ").split())


_env.filters["cell"] = _cell
_env.filters["code"] = _code
_env.filters["neutral"] = neutralise_markdown


def status_marker(run_id: str) -> str:
    return f"<!-- otto:status run={run_id} -->"


def pr_marker(run_id: str, task_id: str) -> str:
    return f"<!-- otto:task run={run_id} task={task_id} -->"


def _check(r: TaskRecord) -> str:
    return "✔" if r.status in (TaskStatus.PASSED, TaskStatus.MERGED) else ""


def _work_in_progress(r: TaskRecord) -> str:
    """Where a stopped attempt's pushed work in progress is (its checks never ran), or ''."""
    if not r.wip_sha:
        return ""
    if r.pr_number is None:
        return f" — its work in progress is on `{r.branch}` ({r.wip_sha[:7]}, unchecked, no PR)"
    return f" — its work in progress ({r.wip_sha[:7]}, unchecked) is on the PR's branch"


def _task_state(r: TaskRecord) -> str:
    if r.status == TaskStatus.ERROR and r.history and r.history[-1].outcome == "stopped":
        return _cell(f"⏹️ {r.note or 'stopped'}{_work_in_progress(r)}")  # a stop asked for is not an error
    text = _TASK_STATE[r.status]
    pushed = f" (pushed by @{r.pushed_by})" if r.pushed_by else ""
    if r.verifying_sha and r.verifying_sha == r.head_sha:
        text = f"🔄 running the checks on {r.verifying_sha[:7]}{pushed}"
    elif r.pushed_by and r.head_sha and r.status in (TaskStatus.PASSED, TaskStatus.FAILED):
        text = f"{text} at {r.head_sha[:7]}{pushed}"
    if r.status == TaskStatus.RUNNING and r.stage:
        text = f"🔄 {r.stage}"
    elif r.status == TaskStatus.FAILED and r.failures:
        text += f" ({plural(r.failures, 'failing test')})"
    if r.note:
        text += f" — {r.note}"
    if r.conflicts_at is not None and r.status not in (TaskStatus.MERGED, TaskStatus.ABANDONED):
        text += f" — ⚠️ conflicts with `{r.pr_base or 'its base'}`: `/otto retry` merges it in"
    if r.refused_changes:
        text += f" — {plural(len(r.refused_changes), 'change')} refused, see the PR"
    return _cell(text)


def by_repository(state: RunState) -> list[tuple[str, list[TaskRecord]]]:
    """The tasks grouped by the repository they change, the issue's first (one group for most runs)."""
    groups: dict[str, list[TaskRecord]] = {state.repo.full_name: []}
    for r in state.tasks:
        groups.setdefault(r.repo.full_name if r.repo else state.repo.full_name, []).append(r)
    return [(name, records) for name, records in groups.items() if records]


def render_status(
    state: RunState, label: str = "otto", run_url: str | None = None, warning: str | None = None
) -> str:
    return _env.get_template("status.md.j2").render(
        run_url=run_url,
        marker=status_marker(state.run_id),
        labeling=labeling_of(state.run_id),
        groups=by_repository(state),
        warning=warning,
        headline=headline(state),
        pr_summary=pr_summary(state),
        state=state,
        label=label,
        check=_check,
        task_state=_task_state,
        plural=plural,
    )


def render_pr_body(
    *,
    run_id: str,
    issue_number: int,
    task: PlannedTask,
    issue_ref: str = "",
    summary: str,
    files: Sequence[str],
    verify_passed: bool,
    no_checks: bool,
    failures: int | None,
    commands: Sequence[str],
    log_tail: str,
    attempt: int,
    fix_rounds: int = 0,
    refused: Sequence[str] = (),
    attempt_url: str | None = None,
    history: Sequence[AttemptRecord] = (),
    stacked_on: int | None = None,
    elsewhere: Sequence[str] = (),
    base_branch: str = "main",
    notes: str = "",
) -> str:
    return _env.get_template("pr_body.md.j2").render(
        plural=plural,
        attempt_url=attempt_url,
        history=list(history),
        stacked_on=stacked_on,
        elsewhere=list(elsewhere),
        base_branch=base_branch,
        notes=neutralise_markdown(notes),
        marker=pr_marker(run_id, task.id),
        issue_number=issue_number,
        issue_ref=issue_ref or f"#{issue_number}",
        task=task,
        intent=neutralise_markdown(task.intent),
        acceptance=[neutralise_markdown(a) for a in task.acceptance],
        summary=quote_markdown(summary) if summary.strip() else "",
        refused=list(refused),
        files=list(files),
        verify_passed=verify_passed,
        no_checks=no_checks,
        failures=failures,
        commands=list(commands),
        log_tail=log_tail.replace("```", "ˋˋˋ"),
        attempt=attempt,
        fix_rounds=fix_rounds,
    )


_VERIFICATION_LINE = re.compile(r"^\*\*Verification[^\n]*$", re.M)
_LOG_TAIL = re.compile(r"(<summary>Verify log \(tail\)</summary>\n\n```\n)(.*?)(\n```\n</details>)", re.S)
_FOOTER = re.compile(r"^<sub>(?:Draft opened by Otto|Checks by Otto|Merged into)[^\n]*</sub>$", re.M)


def restate_checks(
    body: str,
    *,
    sha: str,
    pusher: str,
    passed: bool,
    no_checks: bool,
    failures: int | None,
    commands: Sequence[str],
    log_tail: str,
) -> str:
    """A task PR's body (Otto's own) told the truth of the head a person pushed: its verification line,
    the log's tail and the footer say what Otto's checks found on that head, not on Otto's last attempt."""
    verdict = "✅ passed" if passed else ("⚪ no checks found" if no_checks else "❌ failed")
    failing = f" ({failures} failing)" if failures else ""
    ran = f" — `{'`, `'.join(commands)}`" if commands else ""
    line = f"**Verification at {sha[:7]} (pushed by @{pusher}): {verdict}**{failing}{ran}"
    if passed or no_checks:
        advice = "Approve to merge; comment `/otto retry <guidance>` to have Otto work on it again."
    else:
        advice = (
            "The checks fail, so an approval does not merge it: push a fix (Otto checks every push) or "
            "comment `/otto retry <guidance>`; a writer can comment `/otto merge` to merge it as it is."
        )
    footer = f"<sub>Checks by Otto on {sha[:7]}, pushed by @{pusher}. {advice}</sub>"
    body = _VERIFICATION_LINE.sub(lambda _m: line, body, count=1)
    body = _LOG_TAIL.sub(lambda m: m.group(1) + log_tail.replace("```", "ˋˋˋ") + m.group(3), body, count=1)
    return _FOOTER.sub(lambda _m: footer, body, count=1)


_STACKED = re.compile(r"^> Stacked on #\d+:[^\n]*\n", re.M)


def restate_merged(body: str, *, base: str, merged_by: str, approved_by: str | None, override: bool) -> str:
    """A task PR's body once it is merged: no "approve to merge", no "retargets when …" any more."""
    how = (
        f" on purpose, with `/otto merge` by @{approved_by}"
        if override and approved_by
        else (f" on @{approved_by}'s approval" if approved_by else "")
    )
    footer = f"<sub>Merged into `{base}` by @{merged_by}{how}.</sub>"
    body = _STACKED.sub("", body, count=1)
    return _FOOTER.sub(lambda _m: footer, body, count=1)


def refusal_marker(delivery_id: str) -> str:
    return f"<!-- otto:refusal delivery={delivery_id} -->"


def render_refusal(sender: str, what: str, delivery_id: str) -> str:
    return (
        f"{refusal_marker(delivery_id)}\n"
        f"Sorry @{sender}, only people with write access to this repository can {what}. "
        "Nothing was started."
    )


_ACTIONS = {
    "retry": "🔁 retry this task with a new strategy",
    "skip": (
        "⏭️ skip this task: this pull request stays open as a failing draft and is not merged by an "
        "approval; tasks that depend on it are skipped too. To continue, comment `/otto retry <guidance>` "
        "here, push a fix to this branch (Otto runs the checks on every push), or close it."
    ),
    "replan": "🗺️ replan the remaining work",
}


def render_pilot_analysis(decision: TaskDecision, attempt: int) -> str:
    """The gate pilot's analysis of a failed task, posted on that task's PR."""
    lines = [
        f"### 🧭 Gate pilot: task `{decision.task_id}` after attempt {attempt}",
        "",
        f"**Root cause.** {decision.analysis or 'not stated'}",
        "",
        f"**Decision.** {_ACTIONS[decision.action]}",
    ]
    if decision.strategy:
        lines += ["", f"**Strategy.** {decision.strategy}"]
    lines += [
        "",
        "<sub>Comment `/otto retry <guidance>` to run this task again with your own guidance.</sub>",
    ]
    return "\n".join(lines)
