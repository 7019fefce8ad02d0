"""What Otto tells people, rendered from the run's state: the status comment (PRs counted by their real state,
live stages, per-task cost, merges and stops said as they happened) and a PR body (stacked, attempt history,
no "Approve to merge" on a failing PR). Whole lines are compared, so a text changes here on purpose."""

from __future__ import annotations

from app.domain.pilot import TaskDecision
from app.domain.plan import PlannedTask
from app.domain.progress import describe_stage
from app.domain.render import headline, pr_summary, render_pilot_analysis, render_pr_body, render_status
from app.domain.replies import merged_note, merged_on_purpose, red_on_github, refused_merge
from app.domain.run import AttemptRecord, RepoRef, RunPhase, RunState, TaskRecord, TaskStatus
from app.domain.usage import Usage

REPO = RepoRef(installation_id=1, owner="o", name="r", repo_id=9)


def task(tid: str, title: str, *deps: str) -> PlannedTask:
    return PlannedTask(
        id=tid, title=title, intent=f"{title}.", acceptance=["tests pass"], depends_on=list(deps)
    )


def record(
    tid: str, title: str, status: TaskStatus, pr: int | None, *deps: str, **more: object
) -> TaskRecord:
    rec = TaskRecord(task=task(tid, title, *deps), batch=1 if deps else 0, branch=f"otto/7/{tid}")
    rec.status, rec.pr_number = status, pr
    rec.pr_url = f"https://gh/o/r/pull/{pr}" if pr else None
    for key, value in more.items():
        setattr(rec, key, value)
    return rec


def cost(usd: float) -> Usage:
    return Usage(calls=2, input_tokens=100, output_tokens=20, cost_usd=usd)


def review_state() -> RunState:
    """Four tasks at review: two ready (one stacked on the other), one failing, one skipped by the pilot."""
    state = RunState(run_id="otto/9/7", repo=REPO, issue_number=7, phase=RunPhase.WAITING_REVIEW)
    state.tasks = [
        record("t1", "Add a", TaskStatus.PASSED, 11, usage=cost(0.0125)),
        record("t2", "Use a in b", TaskStatus.PASSED, 12, "t1", usage=cost(0.02)),
        record("t3", "Add c", TaskStatus.FAILED, 13, failures=1, usage=cost(0.03)),
        record("t4", "Add d", TaskStatus.SKIPPED, 14, failures=2, note="skipped by the gate pilot"),
    ]
    return state


def lines_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def row(text: str, tid: str) -> str:
    return next(line for line in lines_of(text) if f"**{tid}**" in line)


def test_the_status_counts_prs_by_their_real_state() -> None:
    text = render_status(review_state())
    assert lines_of(text)[1] == "### 🤖 Otto: waiting for your review"
    assert "**Pull requests:** 2 ready for review, 1 failing (1 test), 1 skipped." in lines_of(text)
    assert (
        row(text, "t1") == "| ✔ | **t1** Add a | 1 | ✅ verified | [#11](https://gh/o/r/pull/11) | $0.0125 |"
    )
    assert row(text, "t3") == (
        "|  | **t3** Add c | 1 | ❌ verification failed (1 failing test) | [#13](https://gh/o/r/pull/13) "
        "| $0.0300 |"
    )
    assert row(text, "t4") == (
        "|  | **t4** Add d | 1 | ⏭️ skipped — skipped by the gate pilot | [#14](https://gh/o/r/pull/14) | — |"
    )
    assert "ready for review" not in text.replace("2 ready for review", "")  # nothing else claims it
    assert "(needs_info)" not in text
    assert "waiting_review" not in text


def test_the_status_shows_each_running_tasks_live_stage() -> None:
    state = RunState(run_id="otto/9/7", repo=REPO, issue_number=7, phase=RunPhase.RUNNING)
    state.tasks = [
        record("t1", "Add a", TaskStatus.RUNNING, None, stage=describe_stage("agent", 7, 40, 0, 3)),
        record("t2", "Add b", TaskStatus.RUNNING, None, stage=describe_stage("verify", 9, 40, 0, 3)),
        record("t3", "Add c", TaskStatus.RUNNING, None, stage=describe_stage("fix round 1", 12, 40, 1, 3)),
    ]
    text = render_status(state)
    assert row(text, "t1") == "|  | **t1** Add a | 1 | 🔄 agent step 7/40 | — | — |"
    assert row(text, "t2") == "|  | **t2** Add b | 1 | 🔄 verifying | — | — |"
    assert row(text, "t3") == "|  | **t3** Add c | 1 | 🔄 fix round 1/3 (step 12/40) | — | — |"
    assert "**Pull requests:**" not in text


def test_merges_say_who_merged_on_whose_approval_or_on_purpose() -> None:
    state = review_state()
    t1, t3 = state.record("t1"), state.record("t3")
    t1.status, t1.note = TaskStatus.MERGED, merged_note("otto[bot]", "mona", None)
    t3.status, t3.note = TaskStatus.MERGED, merged_note("otto[bot]", "mona", "hubot")
    text = render_status(state)
    assert row(text, "t1").split(" | ")[3] == "🟣 merged — merged by otto[bot] on @mona's approval"
    assert row(text, "t3").split(" | ")[3] == (
        "🟣 merged — merged by otto[bot] on purpose at @hubot's `/otto merge` (checks were red)"
    )
    assert pr_summary(state) == "1 ready for review, 2 merged, 1 skipped"


def test_a_stop_reads_stopping_then_stopped_by_whom() -> None:
    state = review_state()
    state.phase, state.stop_requested_by = RunPhase.RUNNING, "mona"
    assert headline(state) == "⏹️ Otto: stopping (asked by @mona)…"
    state.tasks[2] = record(
        "t3",
        "Add c",
        TaskStatus.ERROR,
        None,
        note="stopped before it finished; nothing more is pushed",
        history=[AttemptRecord(attempt=1, trigger="first run", outcome="stopped")],
    )
    state.finish(RunPhase.CANCELLED, "Stopped by @mona; nothing more is pushed.")
    text = render_status(state)
    assert lines_of(text)[1] == "### ⏹️ Otto: stopped by @mona"
    assert "Stopped by @mona; nothing more is pushed." in lines_of(text)
    # the task the stop interrupted reads stopped, not as an error
    assert "| ⏹️ stopped before it finished; nothing more is pushed |" in row(text, "t3")
    assert "⚠️" not in text


def pr_body(
    *, passed: bool, failures: int | None, stacked_on: int | None, history: list[AttemptRecord]
) -> str:
    return render_pr_body(
        run_id="otto/9/7",
        issue_number=7,
        task=task("t2", "Use a in b", "t1"),
        summary="Used a in b.",
        files=["b.py"],
        verify_passed=passed,
        no_checks=False,
        failures=failures,
        commands=["python -m pytest -q"],
        log_tail="1 failed, 3 passed" if failures else "4 passed",
        attempt=len(history),
        fix_rounds=1,
        attempt_url="https://otto/runs/x",
        history=history,
        stacked_on=stacked_on,
        base_branch="main",
    )


HISTORY = [
    AttemptRecord(
        attempt=1, trigger="first run", outcome="checks fail", failures=2, duration_s=41.2, cost_usd=0.0312
    ),
    AttemptRecord(
        attempt=2,
        trigger="`/otto retry` by @mona",
        outcome="checks pass",
        failures=0,
        duration_s=19.6,
        cost_usd=0.01,
    ),
]


def test_a_retried_stacked_pr_keeps_its_attempt_history_and_says_it_is_stacked() -> None:
    body = lines_of(pr_body(passed=True, failures=0, stacked_on=11, history=HISTORY))
    assert (
        "> Stacked on #11: this PR shows only this task's changes; it retargets to `main` when #11 merges."
    ) in body
    at = body.index("**Attempts**")
    assert body[at + 2 : at + 6] == [
        "| # | Why | Outcome | Failing | Time | Cost |",
        "|---|---|---|---|---|---|",
        "| 1 | first run | checks fail | 2 | 41s | $0.0312 |",
        "| 2 | `/otto retry` by @mona | checks pass | 0 | 20s | $0.0100 |",
    ]
    assert body[-1] == (
        "<sub>Draft opened by Otto, attempt 2, 1 fix round. Approve to merge (it merges after #11); "
        "comment `/otto retry <guidance>` to run the task again.</sub>"
    )


def test_a_failing_pr_never_says_approve_to_merge() -> None:
    body = pr_body(passed=False, failures=2, stacked_on=None, history=HISTORY[:1])
    assert "**Verification: ❌ failed** (2 failing) — `python -m pytest -q`" in lines_of(body)
    assert "Approve to merge" not in body
    assert lines_of(body)[-1] == (
        "<sub>Draft opened by Otto, attempt 1, 1 fix round. The checks fail, so an approval does not "
        "merge it: comment `/otto retry <guidance>` to run the task again, or push a fix; a writer can "
        "comment `/otto merge` to merge it as it is.</sub>"
    )
    assert "Stacked on" not in body


def test_a_pilot_skip_says_what_happens_to_the_pr_and_how_to_go_on() -> None:
    decision = TaskDecision(task_id="t3", analysis="b is not written yet.", action="skip", strategy="")
    text = lines_of(render_pilot_analysis(decision, attempt=1))
    assert text[4] == (
        "**Decision.** ⏭️ skip this task: this pull request stays open as a failing draft and is not merged "
        "by an approval; tasks that depend on it are skipped too. To continue, comment "
        "`/otto retry <guidance>` here, push a fix to this branch (Otto runs the checks on every push), or "
        "close it."
    )


def test_replies_to_approvals_that_merge_nothing_say_what_is_red_and_what_to_do() -> None:
    state = review_state()
    red = refused_merge("red", state.record("t3"), "mona", "https://otto/runs/x/t3/1")
    assert lines_of(red) == [
        "@mona approved, but nothing was merged because the checks are red:",
        "",
        "- ❌ Otto's checks: 1 failing test ([log](https://otto/runs/x/t3/1))",
        "",
        "To continue: comment `/otto retry <guidance>` to run the task again, or push a fix to this branch "
        "and approve the new head. A writer can comment `/otto merge` to merge it as it is, on purpose.",
    ]
    skipped = refused_merge("skipped", state.record("t4"), "mona", None)
    assert skipped.startswith(
        "@mona approved, but the gate pilot skipped task `t4` (2 failing tests), so nothing"
    )
    assert "stays open as a failing draft" in skipped
    github_red = red_on_github("mona", ["lint", "ci/build"], "")
    assert lines_of(github_red)[2:4] == ["- ❌ `lint` fails", "- ❌ `ci/build` fails"]
    assert merged_on_purpose("hubot", state.record("t3")) == (
        "Merged on purpose by @hubot with `/otto merge`, although 1 failing test "
        "(Otto's own checks were red)."
    )


def test_counts_in_the_status_are_plural_only_when_they_should_be() -> None:
    state = RunState(run_id="otto/9/7", repo=REPO, issue_number=7, phase=RunPhase.RUNNING)
    state.usage = Usage.of_call("claude-sonnet-4-6", 10, 10)
    assert "· 1 model call ·" in render_status(state)
    state.usage = state.usage + Usage.of_call("claude-sonnet-4-6", 10, 10)
    assert "· 2 model calls ·" in render_status(state)


def test_a_stopped_task_reads_stopped_in_mission_control_not_error() -> None:
    from app.web.views import task_state

    rec = TaskRecord(task=PlannedTask(id="t1", title="A", intent="a", acceptance=[]), batch=0, branch="b")
    rec.status = TaskStatus.ERROR
    rec.history = [AttemptRecord(attempt=1, trigger="first run", outcome="stopped", duration_s=1, cost_usd=0)]
    assert task_state(rec) == "stopped"
    rec.history = [
        AttemptRecord(attempt=1, trigger="first run", outcome="error: git", duration_s=1, cost_usd=0)
    ]
    assert task_state(rec) == "error"


def test_a_merged_pr_body_says_who_merged_it_and_asks_for_nothing() -> None:
    from app.domain.render import restate_merged

    body = pr_body(passed=True, failures=0, stacked_on=11, history=HISTORY)
    merged = restate_merged(body, base="main", merged_by="otto[bot]", approved_by="mona", override=False)
    assert lines_of(merged)[-1] == "<sub>Merged into `main` by @otto[bot] on @mona's approval.</sub>"
    assert "Approve to merge" not in merged
    assert "Stacked on" not in merged
    assert "retargets" not in merged
    red = restate_merged(
        pr_body(passed=False, failures=2, stacked_on=None, history=HISTORY[:1]),
        base="main",
        merged_by="otto[bot]",
        approved_by="mona",
        override=True,
    )
    assert (
        lines_of(red)[-1]
        == "<sub>Merged into `main` by @otto[bot] on purpose, with `/otto merge` by @mona.</sub>"
    )


def test_a_pushed_heads_checks_restate_the_pr_body() -> None:
    from app.domain.render import restate_checks

    body = pr_body(passed=False, failures=2, stacked_on=None, history=HISTORY[:1])
    now = restate_checks(
        body,
        sha="1a2b3c4d5e",
        pusher="mona",
        passed=True,
        no_checks=False,
        failures=0,
        commands=["python -m pytest -q"],
        log_tail="3 passed in 0.1s",
    )
    lines = lines_of(now)
    assert "**Verification at 1a2b3c4 (pushed by @mona): ✅ passed** — `python -m pytest -q`" in lines
    assert "3 passed in 0.1s" in lines
    assert lines[-1].startswith("<sub>Checks by Otto on 1a2b3c4, pushed by @mona. Approve to merge;")
    assert "❌ failed" not in now
