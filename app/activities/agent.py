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


class Agent:
    """One conversation with the coding agent; ``run`` may be called again (a fix round continues it)."""

    def __init__(
        self,
        llm: LLM,
        *,
        root: Path,
        system: str,
        task_id: str,
        model: str,
        max_steps: int,
        command_timeout_s: float,
        output_limit: int,
        env: dict[str, str],
        transcript: Transcript,
        on_step: Callable[[int], None] = lambda _step: None,
        budget_usd: float | None = None,
    ) -> None:
        self.llm = llm
        self.budget_usd = budget_usd
        self.system = system
        self.task_id = task_id
        self.model = model
        self.max_steps = max_steps
        self.transcript = transcript
        self.on_step = on_step
        self.editor = EditorTool(root, output_limit=output_limit)
        self.shell = CommandTool(root, timeout_s=command_timeout_s, output_limit=output_limit, extra_env=env)
        self.messages: list[MessageParam] = []
        self.usage = Usage()
        self.steps = 0
        self.tool_errors = 0
        transcript.write("system", {"system": system})

    @property
    def exhausted(self) -> bool:
        return self.steps >= self.max_steps

    async def run(self, prompt: str) -> AgentResult:
        """Send ``prompt``; loop over tool calls until the model answers without any, or the budget ends."""
        self.messages.append({"role": "user", "content": prompt})
        self.transcript.write("user", {"content": prompt})
        while not self.exhausted:
            self.on_step(self.steps + 1)
            reply = await self.llm.create(
                role="agent",
                system=self.system,
                messages=self.messages,
                tools=TOOLS,
                model=self.model,
                task_id=self.task_id,
                budget_left_usd=None if self.budget_usd is None else self.budget_usd - self.usage.cost_usd,
            )
            self.steps += 1
            self.usage = self.usage + reply.usage
            content = [block.model_dump(mode="json", exclude_none=True) for block in reply.message.content]
            self.transcript.write(
                "assistant",
                {
                    "step": self.steps,
                    "content": content,
                    "stop_reason": reply.message.stop_reason,
                    "usage": reply.usage.model_dump(mode="json"),
                },
            )
            self.messages.append(
                cast(MessageParam, {"role": "assistant", "content": content or "(no content)"})
            )
            calls = [b for b in reply.message.content if b.type == "tool_use"]
            if reply.message.stop_reason != "tool_use" or not calls:
                summary = reply.text.strip() or "The agent finished without a summary."
                return self._result(summary, str(reply.message.stop_reason))
            results: list[ToolResultBlockParam] = []
            for call in calls:
                outcome = await asyncio.to_thread(_run_tool, self.editor, self.shell, call.name, call.input)
                self.tool_errors += outcome.is_error
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": outcome.content,
                        "is_error": outcome.is_error,
                    }
                )
            self.transcript.write("tool_results", {"step": self.steps, "results": results})
            self.messages.append({"role": "user", "content": results})
        # the conversation must end on an assistant turn before it can be continued
        self.messages.append({"role": "assistant", "content": "(step limit reached)"})
        return self._result(f"The agent stopped after its limit of {self.max_steps} steps.", "step_limit")

    def _result(self, summary: str, stop_reason: str) -> AgentResult:
        return AgentResult(summary, self.steps, stop_reason, self.usage, self.tool_errors)


def _run_tool(editor: EditorTool, shell: CommandTool, name: str, tool_input: object) -> ToolOutcome:
    if not isinstance(tool_input, dict):
        return ToolOutcome("Error: tool input must be an object.", True)
    if name == EDITOR_TOOL:
        return editor.handle(tool_input)
    if name == COMMAND_TOOL:
        return shell.handle(tool_input)
    return ToolOutcome(f"Error: unknown tool {name!r}; use {EDITOR_TOOL} or {COMMAND_TOOL}.", True)
