"""Synthetic runs for Mission Control's bench and tests: snapshots and long transcripts written to a store
exactly as Otto's activities write them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from app.artifacts import ArtifactStore, attempt_prefix, run_key, snapshot_key
from app.domain.plan import PlannedTask
from app.domain.run import RepoRef, RunPhase, RunState, TaskRecord, TaskStatus
from app.domain.snapshot import RunSnapshot, advance
from app.domain.usage import Usage

PHASES = [RunPhase.WAITING_REVIEW, RunPhase.DONE, RunPhase.RUNNING, RunPhase.FAILED, RunPhase.CANCELLED]


def transcript(steps: int, result_chars: int = 1_200, big_every: int = 20, big_chars: int = 60_000) -> bytes:
    """An agent transcript of ``steps`` steps: a tool call each (edits and commands), every ``big_every``-th
    result ``big_chars`` long, a final summary."""
    lines = [
        {"kind": "system", "payload": {"system": "otto-role: agent\nYou are Otto's coding agent. " * 40}},
        {"kind": "user", "payload": {"content": "Task t1: make the widget frobnicate. " * 60}},
    ]
    for n in range(1, steps + 1):
        usage = Usage.of_call("claude-sonnet-4-6", 9_000 + 40 * n, 180, 0, 8_000)
        if n == steps:
            content: list[dict[str, Any]] = [
                {"type": "text", "text": "Done: the widget frobnicates; the tests pass."}
            ]
            lines.append(
                {
                    "kind": "assistant",
                    "payload": {
                        "step": n,
                        "content": content,
                        "stop_reason": "end_turn",
                        "usage": usage.model_dump(),
                    },
                }
            )
            break
        if n % 2:
            call = {"name": "run_command", "input": {"command": f"python -m pytest -q tests/test_{n}.py"}}
        else:
            call = {
                "name": "str_replace_based_edit_tool",
                "input": {"command": "create", "path": f"widgets/part_{n}.py", "file_text": "X = 1\n" * 200},
            }
        content = [
            {"type": "text", "text": f"Step {n}: looking at part {n}."},
            {"type": "tool_use", "id": f"toolu_{n:05d}", **call},
        ]
        lines.append(
            {
                "kind": "assistant",
                "payload": {
                    "step": n,
                    "content": content,
                    "stop_reason": "tool_use",
                    "usage": usage.model_dump(),
                },
            }
        )
        size = big_chars if n % big_every == 0 else result_chars
        output = (f"line {n}: " + "." * 70 + "\n") * (size // 80 + 1)
        lines.append(
            {
                "kind": "tool_results",
                "payload": {
                    "step": n,
                    "results": [
                        {
                            "type": "tool_result",
                            "tool_use_id": f"toolu_{n:05d}",
                            "content": output[:size],
                            "is_error": False,
                        }
                    ],
                },
            }
        )
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def run(
    store: ArtifactStore,
    repo: RepoRef,
    issue: int,
    *,
    phase: RunPhase = RunPhase.WAITING_REVIEW,
    created: datetime | None = None,
    steps: int = 0,
    title: str = "Frobnicate the widgets",
) -> RunSnapshot:
    """A two-task run of ``repo``#``issue`` in ``phase``; with ``steps``, t1's attempt 1 has a transcript of
    that many steps, a verify log and a diff."""
    at = created or datetime.now(UTC)
    tasks = [
        TaskRecord(
            task=PlannedTask(
                id="t1", title="Make the widget frobnicate", intent="Frobnicate.", files=["w.py"]
            ),
            batch=0,
            branch=f"otto/{issue}/t1-frobnicate",
            status=TaskStatus.PASSED,
            attempts=1,
            pr_number=issue * 10 + 1,
            pr_url=f"https://github.example/{repo.full_name}/pull/{issue * 10 + 1}",
            usage=Usage.of_call("claude-sonnet-4-6", 200_000, 9_000),
        ),
        TaskRecord(
            task=PlannedTask(id="t2", title="Document it", intent="Docs.", depends_on=["t1"]),
            batch=1,
            branch=f"otto/{issue}/t2-document",
            status=TaskStatus.PENDING,
        ),
    ]
    state = RunState(
        run_id=f"otto/{repo.repo_id}/{issue}",
        repo=repo,
        issue_number=issue,
        phase=RunPhase.PLANNING,
        plan_summary="Frobnicate first, then document.",
        budget_usd=5.0,
    )
    snap = advance(None, state, now=at, execution="bench", issue_title=title)
    state = state.model_copy(update={"phase": phase, "tasks": tasks, "usage": tasks[0].usage})
    snap = advance(snap, state, now=at + timedelta(seconds=95), execution="bench")
    store.put_text(snapshot_key(state.run_id), snap.model_dump_json())
    store.put_text(
        f"{run_key(state.run_id)}/issue.json",
        json.dumps(
            {"number": issue, "title": title, "body": "Please frobnicate.", "author": "mona", "html_url": ""}
        ),
    )
    if steps:
        prefix = attempt_prefix(state.run_id, "t1", 1)
        store.put(f"{prefix}/transcript.jsonl", transcript(steps))
        store.put_text(f"{prefix}/verify-round-0.log", "tests/test_w.py ....\n" * 400 + "4 passed\n")
        diff = "".join(
            f"diff --git a/widgets/part_{i}.py b/widgets/part_{i}.py\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/widgets/part_{i}.py\n@@ -0,0 +1,3 @@\n+X = 1\n+Y = 2\n+Z = 3\n"
            for i in range(40)
        )
        store.put_text(f"{prefix}/diff.patch", diff)
        store.put_text(f"{prefix}/summary.md", "Done: the widget frobnicates.\n")
    return snap
