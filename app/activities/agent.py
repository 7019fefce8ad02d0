"""The coding agent: a plain tool-use loop confined to one worktree.

Tool schemas are declared once; each model turn's tool calls run in a thread (they block), their results
go back as one user message of ``tool_result`` blocks, and the loop ends when the model answers without
tool calls (its text is the summary) or the step limit is reached. Every request and answer is appended
to a JSONL transcript in the run's artifact dir.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from anthropic.types import (
    MessageParam,
    ToolParam,
    ToolResultBlockParam,
    ToolTextEditor20250728Param,
    ToolUnionParam,
)

from app.activities.agent_tools import CommandTool, EditorTool, ToolOutcome
from app.domain.redact import redact
from app.domain.usage import Usage
from app.llm import LLM

EDITOR_TOOL = "str_replace_based_edit_tool"
COMMAND_TOOL = "run_command"

_EDITOR: ToolTextEditor20250728Param = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
_COMMAND: ToolParam = {
    "name": COMMAND_TOOL,
    "description": (
        "Run a shell command (bash) in the repository root and get its combined output and exit code. "
        "Each call runs in a fresh shell with a time limit; no credentials are available."
    ),
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string", "description": "the command line to run"}},
        "required": ["command"],
    },
    "cache_control": {"type": "ephemeral"},
}
TOOLS: list[ToolUnionParam] = [_EDITOR, _COMMAND]


@dataclass
class AgentResult:
    summary: str
    steps: int
    stop_reason: str
    usage: Usage = field(default_factory=Usage)
    tool_errors: int = 0


class Transcript:
    def __init__(self, path: Path | None, secrets: list[str]) -> None:
        self.path = path
        self.secrets = secrets
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, kind: str, payload: Any) -> None:
        if self.path is None:
            return
        line = redact(json.dumps({"kind": kind, "payload": payload}, default=str), self.secrets)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


async def run_agent(
    llm: LLM,
    *,
    root: Path,
    system: str,
    prompt: str,
    task_id: str,
    model: str,
    max_steps: int,
    command_timeout_s: float,
    output_limit: int,
    env: dict[str, str],
    transcript: Transcript,
    on_step: Callable[[int], None] = lambda _step: None,
) -> AgentResult:
    editor = EditorTool(root, output_limit=output_limit)
    shell = CommandTool(root, timeout_s=command_timeout_s, output_limit=output_limit, extra_env=env)
    messages: list[MessageParam] = [{"role": "user", "content": prompt}]
    usage = Usage()
    tool_errors = 0
    transcript.write("prompt", {"system": system, "user": prompt})
    for step in range(1, max_steps + 1):
        on_step(step)
        reply = await llm.create(
            role="agent", system=system, messages=messages, tools=TOOLS, model=model, task_id=task_id
        )
        usage = usage + reply.usage
        content = [block.model_dump(mode="json", exclude_none=True) for block in reply.message.content]
        transcript.write(
            "assistant", {"step": step, "content": content, "stop_reason": reply.message.stop_reason}
        )
        calls = [b for b in reply.message.content if b.type == "tool_use"]
        if reply.message.stop_reason != "tool_use" or not calls:
            summary = reply.text.strip() or "The agent finished without a summary."
            return AgentResult(summary, step, str(reply.message.stop_reason), usage, tool_errors)
        messages.append(cast(MessageParam, {"role": "assistant", "content": content}))
        results: list[ToolResultBlockParam] = []
        for call in calls:
            outcome = await asyncio.to_thread(_run_tool, editor, shell, call.name, call.input)
            tool_errors += outcome.is_error
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": outcome.content,
                    "is_error": outcome.is_error,
                }
            )
        transcript.write("tool_results", {"step": step, "results": results})
        messages.append({"role": "user", "content": results})
    return AgentResult(
        f"The agent stopped after its limit of {max_steps} steps without finishing.",
        max_steps,
        "step_limit",
        usage,
        tool_errors,
    )


def _run_tool(editor: EditorTool, shell: CommandTool, name: str, tool_input: object) -> ToolOutcome:
    if not isinstance(tool_input, dict):
        return ToolOutcome("Error: tool input must be an object.", True)
    if name == EDITOR_TOOL:
        return editor.handle(tool_input)
    if name == COMMAND_TOOL:
        return shell.handle(tool_input)
    return ToolOutcome(f"Error: unknown tool {name!r}; use {EDITOR_TOOL} or {COMMAND_TOOL}.", True)
