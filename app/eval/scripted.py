"""The scripted models of `otto eval` (``scripted:<behaviour>``), which prove the harness scores right and
drive the pilot's A/B without a key:

- ``oracle``: the agent writes the gold ``patch`` through its editing tools (one task) — every instance
  resolved;
- ``null``: the agent changes nothing — none resolved;
- ``first-fails``: the first attempt writes a change that breaks the repository's checks (a syntax error in
  the first file the gold patch touches) and gives up; a second attempt (the pilot's retry, or a person's
  ``/otto retry``) writes the gold patch. With the pilot on, its scripted decision is ``retry``.

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


def scenario(behaviour: str, inst: Instance, changes: dict[str, str | None]) -> dict[str, Any]:
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown scripted behaviour {behaviour!r} (known: {', '.join(BEHAVIOURS)})")
    title = inst.title[:70]
    plan_task = {
        "id": "t1",
        "title": title,
        "intent": f"Resolve the issue: {title}.",
        "acceptance": ["the repository's tests pass"],
        "depends_on": [],
    }
    done = {"text": "Made the change the issue asks for."}
    agent: list[dict[str, Any]]
    more: dict[str, Any] = {}
    if behaviour == "oracle":
        agent = [*gold_steps(changes), done]
    elif behaviour == "null":
        agent = [{"text": "I looked into it and changed nothing."}]
    else:
        first = next((p for p, t in sorted(changes.items()) if t is not None), None)
        broken = [_create(first, "this is not python (\n")] if first else []
        agent = [*broken, {"text": "I could not finish this."}]
        more["pilot"] = [
            {
                "json": {
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
            }
        ]
    return {
        "classify": [{"json": {"actionable": True, "summary": title}}],
        "plan": [{"json": {"summary": title, "tasks": [plan_task]}}],
        "agent": {"t1": agent, "t1.2": [*gold_steps(changes), done], "*": [{"text": "Nothing more to do."}]},
        **more,
    }
