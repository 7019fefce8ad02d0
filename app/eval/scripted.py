"""The scripted models of `otto eval` (``scripted:<behaviour>``), which prove the harness scores right and
drive the pilot's A/B without a key:

- ``oracle``: the agent writes the gold ``patch`` through its editing tools (one task) — every instance
  resolved;
- ``null``: the agent changes nothing — none resolved;
- ``first-fails``: a plan of two tasks, the fix (``t1``) and a changelog line on top (``t2``); the fix's
  first attempt breaks the repository's checks (a syntax error in the first file the gold patch touches),
  so the gate decides before ``t2``: with the pilot on, its scripted decision is ``retry`` and the second
  attempt writes the gold patch; with it off, the scripted replanner replaces both with new tasks that do
  the same (``r1``, ``r2``). The instance's fix rounds are off for it (the failure must reach the gate).

A scenario is the scripted model's format (:mod:`app.dev.fake_llm`), loaded for the instance's run only.
"""

from __future__ import annotations

import shlex
from typing import Any

from app.eval.instances import Instance

BEHAVIOURS = ("oracle", "null", "first-fails")
EDIT_TOOL = "str_replace_based_edit_tool"


def _create(path: str, text: str) -> dict[str, Any]:
    return {"tool_use": {"name": EDIT_TOOL, "input": {"command": "create", "path": path, "file_text": text}}}


def _remove(path: str) -> dict[str, Any]:
    return {"tool_use": {"name": "run_command", "input": {"command": f"rm -f -- {shlex.quote(path)}"}}}


def _replace(path: str, old: str, new: str) -> dict[str, Any]:
    edit = {"command": "str_replace", "path": path, "old_str": old, "new_str": new}
    return {"tool_use": {"name": EDIT_TOOL, "input": edit}}


def edit_of(before: str, after: str) -> tuple[str, str]:
    """The smallest whole-line span of ``before`` that, replaced, gives ``after`` — grown by a line at a
    time until it occurs once in ``before`` (what ``str_replace`` needs)."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    start, end_a, end_b = head, len(a) - tail, len(b) - tail
    while True:
        old, new = "".join(a[start:end_a]), "".join(b[start:end_b])
        if old and before.count(old) == 1:
            return old, new
        if start > 0:
            start -= 1
        if end_a < len(a):
            end_a, end_b = end_a + 1, end_b + 1
        if start == 0 and end_a == len(a):
            return "".join(a[start:end_a]), "".join(b[start:end_b])


def gold_steps(changes: dict[str, tuple[str | None, str | None]]) -> list[dict[str, Any]]:
    """The agent's tool calls that leave the work tree as the gold patch does: a ``str_replace`` of the
    changed lines in an existing file, a ``create`` of a new one, an ``rm`` of a deleted one."""
    steps: list[dict[str, Any]] = []
    for path, (before, after) in sorted(changes.items()):
        if after is None:
            steps.append(_remove(path))
        elif before is None or not before.strip():
            steps.append(_create(path, after))
        else:
            steps.append(_replace(path, *edit_of(before, after)))
    return steps


def _task(tid: str, title: str, *deps: str) -> dict[str, Any]:
    return {
        "id": tid,
        "title": title,
        "intent": f"{title}.",
        "acceptance": ["the repository's tests pass"],
        "depends_on": list(deps),
    }


CHANGELOG = "CHANGELOG.otto.md"
JUNK = "this is not python (\n"


def scenario(
    behaviour: str, inst: Instance, changes: dict[str, tuple[str | None, str | None]]
) -> dict[str, Any]:
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown scripted behaviour {behaviour!r} (known: {', '.join(BEHAVIOURS)})")
    title = inst.title[:70]
    done = {"text": "Made the change the issue asks for."}
    fix = [*gold_steps(changes), done]
    classify = [{"json": {"actionable": True, "summary": title}}]
    fallback = [{"text": "Nothing more to do."}]
    if behaviour != "first-fails":
        agent = fix if behaviour == "oracle" else [{"text": "I looked into it and changed nothing."}]
        plan = {"summary": title, "tasks": [_task("t1", f"Resolve: {title}")]}
        return {"classify": classify, "plan": [{"json": plan}], "agent": {"t1": agent, "*": fallback}}
    # two tasks: the fix, then a changelog line on top; the fix's first attempt breaks the checks
    # the break: a syntax error next to the first edit (small, as a model's edit is); the retry, on the
    # same branch, takes it out with the fix; a replanned task starts from the base branch again
    edited = [(p, b, a) for p, (b, a) in sorted(changes.items()) if b and b.strip() and a is not None]
    broken: list[dict[str, Any]] = []
    retry = fix
    if edited:
        path, before, after = edited[0]
        old, new = edit_of(before, after)
        broken = [_replace(path, old, old + JUNK)]
        rest = {p: c for p, c in changes.items() if p != path}
        retry = [_replace(path, old + JUNK, new), *gold_steps(rest), done]
    note = [_create(CHANGELOG, f"- Fixed: {title}\n"), {"text": "Noted the fix in the changelog."}]
    plan = {
        "summary": title,
        "tasks": [_task("t1", f"Fix: {title}"), _task("t2", "Note it in the changelog", "t1")],
    }
    replanned = {
        "summary": "Start the fix again, then the changelog.",
        "tasks": [_task("r1", f"Fix again: {title}"), _task("r2", "Note it in the changelog", "r1")],
    }
    decision = {
        "tasks": [
            {
                "task_id": "t1",
                "analysis": "The attempt left a syntax error.",
                "action": "retry",
                "strategy": "Write the fix itself.",
            }
        ],
        "summary": "Retry t1.",
    }
    return {
        "classify": classify,
        "plan": [{"json": plan}],
        "pilot": [{"json": decision}],
        "replan": [{"json": replanned}],
        "agent": {
            "t1": [*broken, {"text": "I could not finish this."}],
            "t1.2": retry,
            "t2": note,
            "r1": fix,
            "r2": note,
            "*": fallback,
        },
    }
