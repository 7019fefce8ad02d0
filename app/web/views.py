"""What the pages show, computed from snapshots and artifacts (no HTTP here): rows of the runs list, the run
page's model, the attempt page's model, and the versions the live pages poll for."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.artifacts import ArtifactInfo, attempt_prefix, run_key
from app.domain.links import attempt_path, run_path
from app.domain.run import RunPhase, RunState, TaskRecord, TaskStatus
from app.domain.snapshot import RunSnapshot, task_durations
from app.domain.transcript import Conversation, Diff, Entry, Gap, parse_diff, parse_transcript
from app.domain.usage import Usage
from app.web.reader import CachedReads

PAGE_SIZE = 50
LOG_TAIL_CHARS = 20_000
ISSUE_CHARS = 20_000
DONE = (TaskStatus.PASSED, TaskStatus.MERGED)
STATE_FILTERS = ["active", "final", *(p.value for p in RunPhase)]


class BadFilter(ValueError):
    pass


def matches_state(snap: RunSnapshot, wanted: str) -> bool:
    if wanted == "active":
        return not snap.final
    if wanted == "final":
        return snap.final
    return snap.state.phase.value == wanted


@dataclass
class Row:
    snap: RunSnapshot
    url: str
    done: int
    total: int
    prs: list[tuple[int, str]]

    @property
    def state(self) -> RunState:
        return self.snap.state


@dataclass
class RunsPage:
    rows: list[Row]
    total: int
    page: int
    pages: int
    repos: list[str]
    repo: str
    state: str


def runs_page(snaps: list[RunSnapshot], readable: set[int], repo: str, state: str, page: int) -> RunsPage:
    if state and state not in STATE_FILTERS:
        raise BadFilter(f"unknown state {state!r}; use one of {', '.join(STATE_FILTERS)}")
    visible = [s for s in snaps if s.state.repo.repo_id in readable]
    repos = sorted({s.repo_full_name for s in visible}, key=str.lower)
    chosen = [
        s
        for s in visible
        if (not repo or s.repo_full_name.lower() == repo.lower()) and (not state or matches_state(s, state))
    ]
    pages = max(1, -(-len(chosen) // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = []
    for s in chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        tasks = s.state.tasks
        rows.append(
            Row(
                snap=s,
                url=run_path(s.run_id) or "#",
                done=sum(1 for r in tasks if r.status in DONE),
                total=len(tasks),
                prs=[(r.pr_number, r.pr_url or "") for r in tasks if r.pr_number is not None],
            )
        )
    return RunsPage(rows, len(chosen), page, pages, repos, repo, state)


@dataclass
class TaskView:
    rec: TaskRecord
    duration_s: float | None
    attempts: list[tuple[int, str]]  # (n, attempt page path)
    can_retry: bool


def task_state(rec: TaskRecord) -> str:
    """The word a task's badge shows: a stop asked for is "stopped", not an error."""
    if rec.status == TaskStatus.ERROR and rec.history and rec.history[-1].outcome == "stopped":
        return "stopped"
    return rec.status.value


@dataclass
class RunView:
    snap: RunSnapshot
    issue: dict[str, Any]
    batches: list[list[TaskView]]
    pilot_files: list[str]
    budget_left: float | None
    artifacts: list[str]
    version: str

    @property
    def state(self) -> RunState:
        return self.snap.state


def read_issue(reads: CachedReads, run_id: str, token: str) -> dict[str, Any]:
    raw = reads.text(f"{run_key(run_id)}/issue.json", token)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    body = str(data.get("body") or "")
    return {
        "title": str(data.get("title") or ""),
        "body": body[:ISSUE_CHARS],
        "body_cut": max(0, len(body) - ISSUE_CHARS),
        "author": str(data.get("author") or ""),
        "html_url": str(data.get("html_url") or ""),
    }


def run_view(reads: CachedReads, snap: RunSnapshot, now: datetime) -> RunView:
    state = snap.state
    durations = task_durations(snap, now)
    by_batch: dict[int, list[TaskView]] = {}
    for rec in state.tasks:
        by_batch.setdefault(rec.batch, []).append(
            TaskView(
                rec=rec,
                duration_s=durations.get(rec.task.id),
                attempts=[
                    (n, attempt_path(state.run_id, rec.task.id, n) or "#") for n in range(1, rec.attempts + 1)
                ],
                can_retry=not snap.final
                and rec.status
                not in (TaskStatus.RUNNING, TaskStatus.PENDING, TaskStatus.MERGED, TaskStatus.ABANDONED),
            )
        )
    run = run_key(state.run_id)
    listed = reads.list(f"{run}/", str(snap.seq))  # changes come with a status publish
    top = [i.key[len(run) + 1 :] for i in listed if "/" not in i.key[len(run) + 1 :]]
    budget_left = None if state.budget_usd is None else max(0.0, state.budget_usd - state.usage.cost_usd)
    return RunView(
        snap=snap,
        issue=read_issue(reads, state.run_id, str(snap.seq)),
        batches=[by_batch[b] for b in sorted(by_batch)],
        pilot_files=[k for k in top if k.startswith("pilot-")],
        budget_left=budget_left,
        artifacts=[k for k in top if not k.startswith("pilot-")],
        version=str(snap.seq),
    )


# --------------------------------------------------------------------------------------------- attempts


@dataclass
class VerifyLog:
    name: str  # the artifact's path under the run
    label: str
    tail: str
    cut: int  # characters left out at the start


@dataclass
class AttemptView:
    snap: RunSnapshot
    rec: TaskRecord
    attempt: int
    running: bool
    conversation: Conversation | None
    entries: list[Entry | Gap]
    show_all: bool
    logs: list[VerifyLog]
    diff: Diff | None
    summary: str
    prefix: str  # the attempt's artifacts, relative to the run
    version: str
    usage: Usage = field(default_factory=Usage)

    @property
    def state(self) -> RunState:
        return self.snap.state


_ROUND = re.compile(r"/verify\.(\d+)\.log$")


def attempt_version(snap: RunSnapshot, infos: list[ArtifactInfo]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for i in infos:
        digest.update(f"{i.key}\0{i.version}\n".encode())
    return f"{snap.seq}-{digest.hexdigest()[:16]}"


def attempt_running(snap: RunSnapshot, rec: TaskRecord, attempt: int) -> bool:
    return rec.status == TaskStatus.RUNNING and attempt == rec.attempts and not snap.final


def attempt_infos(reads: CachedReads, snap: RunSnapshot, rec: TaskRecord, attempt: int) -> list[ArtifactInfo]:
    """What the attempt left; a finished attempt's artifacts were all uploaded before its result was
    recorded, so its listing never changes."""
    token = None if attempt_running(snap, rec, attempt) else "final"
    return reads.list(attempt_prefix(snap.run_id, rec.task.id, attempt) + "/", token)


def verify_logs(reads: CachedReads, infos: list[ArtifactInfo], run_prefix: str) -> list[VerifyLog]:
    rounds = sorted(
        ((int(m.group(1)), i) for i in infos if (m := _ROUND.search(i.key))), key=lambda pair: pair[0]
    )
    chosen = [(f"after fix round {n}" if n else "first check", i) for n, i in rounds]
    if not chosen:  # attempts recorded before every round had its own log
        chosen = [("last run", i) for i in infos if i.key.endswith("/verify.log")]
    logs = []
    for label, info in chosen:
        text = reads.text_of(info) or ""
        cut = max(0, len(text) - LOG_TAIL_CHARS)
        logs.append(VerifyLog(info.key[len(run_prefix) + 1 :], label, text[cut:], cut))
    return logs


def attempt_view(
    reads: CachedReads,
    snap: RunSnapshot,
    rec: TaskRecord,
    attempt: int,
    infos: list[ArtifactInfo],
    conversation: Conversation | None,
    show_all: bool,
) -> AttemptView:
    run = run_key(snap.run_id)
    prefix = attempt_prefix(snap.run_id, rec.task.id, attempt)
    names = {i.key[len(prefix) + 1 :]: i for i in infos}
    diff_text = reads.text_of(names["diff.patch"]) if "diff.patch" in names else None
    summary = (reads.text_of(names["summary.md"]) or "") if "summary.md" in names else ""
    running = attempt_running(snap, rec, attempt)
    return AttemptView(
        snap=snap,
        rec=rec,
        attempt=attempt,
        running=running,
        conversation=conversation,
        entries=conversation.view(show_all) if conversation else [],
        show_all=show_all,
        logs=verify_logs(reads, infos, run),
        diff=parse_diff(diff_text) if diff_text is not None else None,
        summary=summary,
        prefix=prefix[len(run) + 1 :],
        version=attempt_version(snap, infos),
        usage=conversation.usage if conversation else Usage(),
    )


def load_conversation(reads: CachedReads, info: ArtifactInfo) -> tuple[list[bytes], Conversation] | None:
    raw = reads.store.get(info.key)  # the parsed form is what the caller caches
    if raw is None:
        return None
    lines = raw.split(b"\n")
    return lines, parse_transcript(lines)


# ------------------------------------------------------------------------------------------- formatting


def money(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}" if value < 10 else f"${value:.2f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def tokens(n: int) -> str:
    return f"{n / 1_000_000:.2f}M" if n >= 1_000_000 else f"{n / 1000:.1f}k" if n >= 1000 else str(n)
