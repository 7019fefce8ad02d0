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


def gold_steps(changes: dict[str, str | None]) -> list[dict[str, Any]]:
    """The agent's tool calls that leave the work tree as the gold patch does."""
    return [_create(p, t) if t is not None else _remove(p) for p, t in sorted(changes.items())]


def _task(tid: str, title: str, *deps: str) -> dict[str, Any]:
    return {
        "id": tid,
        "title": title,
        "intent": f"{title}.",
        "acceptance": ["the repository's tests pass"],
        "depends_on": list(deps),
    }


CHANGELOG = "CHANGELOG.otto.md"


def scenario(behaviour: str, inst: Instance, changes: dict[str, str | None]) -> dict[str, Any]:
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
    first = next((p for p, t in sorted(changes.items()) if t is not None), None)
    broken = [_create(first, "this is not python (\n")] if first else []
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
            "t1.2": fix,
            "t2": note,
            "r1": fix,
            "r2": note,
            "*": fallback,
        },
    }
