"""The coding agent: a tool-use loop confined to one worktree, fit for long tasks.

Tool schemas are declared once; each model turn's tool calls run in a thread (they block), their results
(bounded: head and tail with the omitted byte count) go back as one user message of ``tool_result`` blocks,
and the loop ends when the model answers without tool calls (its text is the summary) or the step limit
is reached. Every request and answer is appended to a JSONL transcript in the run's artifact dir.

Long tasks (see :mod:`app.domain.context`):

- **Caching**: every request carries a cache breakpoint on its newest turn (and on the previous one), so
  each step reads the conversation so far from the prompt cache and writes only its own turn.
- **Bounded context**: before each request the prompt is estimated locally (calibrated by the usage the
  API reports; no ``count_tokens`` round trip per step); above the policy's threshold it is shrunk (old
  tool results cleared, then the oldest turns elided), recorded as a ``context`` transcript record and in
  :attr:`AgentResult.context_events`. A prompt above the model's window is never sent.
- **Every stop reason**: ``tool_use`` runs the calls; ``end_turn``/``stop_sequence`` finish; ``max_tokens``
  is retried with twice the output limit (up to ``max_tokens_limit``; a call cut off is never run), and at
  the limit the model is asked for a smaller step; ``pause_turn`` is continued as it is; ``refusal`` ends
  the conversation with that reason in :attr:`AgentResult.note`; a context-window error (the API's 400 or
  ``model_context_window_exceeded``) shrinks the prompt and retries once, then ends with a clear reason.
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

from app.agent.tools import CommandTool, EditorTool, ToolOutcome
from app.domain.context import (
    ContextPolicy,
    PromptMeter,
    conversation_problems,
    json_bytes,
    shrink,
    with_cache_breakpoints,
)
from app.domain.logs import bound_text
from app.domain.redact import redact
from app.domain.usage import Usage
from app.llm import LLM, ContextWindowExceeded, Reply, system_blocks

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

DEFAULT_MAX_TOKENS = 8192
MAX_CUT_OFF_TOOL_CALLS = 2  # answers cut off at the output limit inside a tool call, in a row
_TOOL_OUTPUT_SLACK = 256  # tools bound their own output; the loop's bound is a safety net above it
SMALLER_STEP = (
    "Your last answer reached the output limit ({limit} tokens) in the middle of a tool call, so the call "
    "was not run. Make smaller steps: write a big file in parts (create it with the first part, then add "
    "the rest with `insert` or `str_replace`), and keep each command short."
)


@dataclass
class AgentResult:
    summary: str
    steps: int
    stop_reason: str
    usage: Usage = field(default_factory=Usage)
    tool_errors: int = 0
    note: str = ""  # why the agent stopped short of finishing (refusal, context, output limit), for the PR
    context_events: list[dict[str, Any]] = field(default_factory=list)  # each time the prompt was shrunk

    def report(self) -> dict[str, Any]:
        """What the attempt's artifacts record about the agent's conversation."""
        return {
            "stop_reason": self.stop_reason,
            "note": self.note,
            "steps": self.steps,
            "tool_errors": self.tool_errors,
            "usage": self.usage.model_dump(),
            "context_events": self.context_events,
        }


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
        editor: EditorTool,
        shell: CommandTool,
        system: str,
        task_id: str,
        model: str,
        max_steps: int,
        transcript: Transcript,
        on_step: Callable[[int], None] = lambda _step: None,
        on_usage: Callable[[Usage], None] = lambda _usage: None,
        budget_usd: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        max_tokens_limit: int = 4 * DEFAULT_MAX_TOKENS,
        context: ContextPolicy | None = None,
        run: str | None = None,
    ) -> None:
        """``run``: the run it works for (``owner/name#N``), named in its prompts."""
        self.llm = llm
        self.run_ref = run
        self.budget_usd = budget_usd
        self.system = system
        self.task_id = task_id
        self.model = model
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.max_tokens_limit = max(max_tokens_limit, max_tokens)
        self.context = context or ContextPolicy.for_model(model, 100_000, 4, self.max_tokens_limit)
        self.transcript = transcript
        self.on_step = on_step
        self.on_usage = on_usage  # each model call's usage, as it happens (a crash must not lose spend)
        self.editor = editor
        self.shell = shell
        self.output_limit = shell.output_limit
        self.messages: list[MessageParam] = []
        self.usage = Usage()
        self.steps = 0
        self.tool_errors = 0
        self.ended = ""  # set when the conversation cannot go on (a refusal, the context, the output limit)
        self.context_events: list[dict[str, Any]] = []
        self.meter = PromptMeter()
        self._fixed_bytes = json_bytes(system_blocks("agent", system, task_id, run)) + json_bytes(TOOLS)
        transcript.write("system", {"system": system})

    @property
    def exhausted(self) -> bool:
        """No more model calls: the step limit is reached, or the conversation ended for good."""
        return self.steps >= self.max_steps or bool(self.ended)

    async def run(self, prompt: str) -> AgentResult:
        """Send ``prompt``; loop over tool calls until the model answers without any, or the budget ends."""
        if self.ended:
            return self._result("The agent could not continue: " + self.ended, "ended", self.ended)
        self.messages.append({"role": "user", "content": [{"type": "text", "text": prompt}]})
        self.transcript.write("user", {"content": prompt})
        cut_offs = 0
        while not self.exhausted:
            self.on_step(self.steps + 1)
            answer = await self._ask()
            if isinstance(answer, AgentResult):
                return answer
            message = answer.message
            stop = str(message.stop_reason)
            content = [block.model_dump(mode="json", exclude_none=True) for block in message.content]
            calls = [b for b in message.content if b.type == "tool_use"]
            if stop == "max_tokens" and calls:
                # cut off inside a tool call even at the output limit: never run it; ask for a smaller step
                self._append_assistant(
                    content, keep_calls=False, empty="(answer cut off at the output limit)"
                )
                cut_offs += 1
                if cut_offs > MAX_CUT_OFF_TOOL_CALLS:
                    return self._end(
                        "max_tokens",
                        "the model's answers kept reaching the output limit "
                        f"({self.max_tokens_limit} tokens) inside a tool call",
                    )
                note = SMALLER_STEP.format(limit=self.max_tokens_limit)
                self.messages.append({"role": "user", "content": [{"type": "text", "text": note}]})
                self.transcript.write("user", {"content": note})
                continue
            if stop == "pause_turn" and not calls:
                self._append_assistant(content, keep_calls=False)  # the next request continues the turn
                continue
            if stop == "refusal":
                self._append_assistant(content, keep_calls=False)
                said = answer.text.strip()
                return self._end(
                    "refusal",
                    "the model declined to continue this task (stop reason `refusal`)"
                    + (f": {bound_text(said, 500)}" if said else ""),
                )
            self._append_assistant(content, keep_calls=bool(calls))
            if calls:
                cut_offs = 0
                await self._run_calls(calls)
                continue
            summary = answer.text.strip() or "The agent finished without a summary."
            if stop == "max_tokens":
                note = "the summary was cut off at the output limit"
                return self._result(summary + " …", stop, note)
            return self._result(summary, stop)
        if self.ended:
            return self._result("The agent could not continue: " + self.ended, "ended", self.ended)
        # the conversation must end on an assistant turn before it can be continued
        self.messages.append({"role": "assistant", "content": "(step limit reached)"})
        return self._result(f"The agent stopped after its limit of {self.max_steps} steps.", "step_limit")

    # -- one model call, with the retries its stop reason or error calls for ---------------------------

    async def _ask(self) -> Reply | AgentResult:
        max_tokens = self.max_tokens
        shrunk_for_window = False
        while True:
            request = self._request()
            if request is None:
                return self._end(
                    "context_window",
                    f"the conversation no longer fits in the model's context window "
                    f"({self.context.window_tokens} tokens) even with old tool output cleared",
                )
            sent_bytes = self._bytes(request)
            try:
                reply = await self.llm.create(
                    role="agent",
                    system=self.system,
                    messages=request,
                    tools=TOOLS,
                    model=self.model,
                    max_tokens=max_tokens,
                    task_id=self.task_id,
                    run=self.run_ref,
                    budget_left_usd=None
                    if self.budget_usd is None
                    else self.budget_usd - self.usage.cost_usd,
                )
            except ContextWindowExceeded as e:
                self.transcript.write("model_error", {"step": self.steps + 1, "error": str(e)})
                if e.prompt_tokens:
                    self.meter.observe(sent_bytes, e.prompt_tokens)  # the API's own count recalibrates
                if shrunk_for_window:
                    return self._end("context_window", f"{e}, even after shrinking the conversation")
                shrunk_for_window = True
                self._shrink("the API refused the prompt as too long", force=True)
                continue
            self.steps += 1
            self.usage = self.usage + reply.usage
            self.on_usage(reply.usage)
            u = reply.usage
            self.meter.observe(
                sent_bytes, u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens
            )
            content = [block.model_dump(mode="json", exclude_none=True) for block in reply.message.content]
            stop = reply.message.stop_reason
            self.transcript.write(
                "assistant",
                {
                    "step": self.steps,
                    "content": content,
                    "stop_reason": stop,
                    "max_tokens": max_tokens,
                    "usage": u.model_dump(),
                },
            )
            if stop == "model_context_window_exceeded":
                # the answer ran into the end of the window: make room, ask again (once)
                if shrunk_for_window or self.exhausted:
                    return self._end(
                        "context_window",
                        "the model's answer ran out of context window even after shrinking the conversation",
                    )
                shrunk_for_window = True
                self._shrink("the answer ran into the end of the context window", force=True)
                continue
            if stop == "max_tokens" and max_tokens < self.max_tokens_limit and not self.exhausted:
                # cut off: ask again with more room (a tool call cut off is never run)
                max_tokens = min(2 * max_tokens, self.max_tokens_limit)
                self.transcript.write("retry", {"step": self.steps, "reason": stop, "max_tokens": max_tokens})
                continue
            return reply

    def _request(self) -> list[MessageParam] | None:
        """The messages to send (with cache breakpoints), shrunk first if they pass the threshold; None when
        even the shrunk prompt would not fit in the window."""
        estimate = self.meter.estimate(self._bytes(self.messages))
        if estimate > self.context.threshold_tokens:
            self._shrink(f"the prompt passed {self.context.threshold_tokens} tokens (about {estimate})")
            estimate = self.meter.estimate(self._bytes(self.messages))
        if estimate > self.context.window_tokens:
            return None
        return cast(list[MessageParam], with_cache_breakpoints(cast(list[dict[str, Any]], self.messages)))

    def _shrink(self, reason: str, *, force: bool = False) -> None:
        """Shrink the conversation to the policy's low-water mark (``force``: to half of it)."""
        target = self.context.target_tokens // (2 if force else 1)
        shrunk = shrink(
            cast(list[dict[str, Any]], self.messages),
            fixed_bytes=self._fixed_bytes,
            estimate=self.meter.estimate,
            target_tokens=target,
            keep=self.context.keep_tool_results,
        )
        event: dict[str, Any] = {
            "step": self.steps,
            "reason": reason,
            "target_tokens": target,
            **shrunk.record(),
        }
        if shrunk.changed:
            problems = conversation_problems(shrunk.messages)
            if problems:  # a bug in shrinking: keep the conversation as it was rather than send it broken
                event["refused"] = problems
            else:
                self.messages = cast(list[MessageParam], shrunk.messages)
        self.context_events.append(event)
        self.transcript.write("context", {**event, "elided": shrunk.notes})

    def _bytes(self, messages: list[MessageParam]) -> int:
        return self._fixed_bytes + sum(json_bytes(m) + 1 for m in messages)

    # -- the conversation ----------------------------------------------------------------------------

    def _append_assistant(self, content: list[dict[str, Any]], *, keep_calls: bool, empty: str = "") -> None:
        blocks = content if keep_calls else [b for b in content if b.get("type") != "tool_use"]
        blocks = [b for b in blocks if not (b.get("type") == "text" and not b.get("text"))]
        self.messages.append(
            cast(MessageParam, {"role": "assistant", "content": blocks or empty or "(no content)"})
        )

    async def _run_calls(self, calls: list[Any]) -> None:
        results: list[ToolResultBlockParam] = []
        for call in calls:
            outcome = await asyncio.to_thread(_run_tool, self.editor, self.shell, call.name, call.input)
            self.tool_errors += outcome.is_error
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": bound_text(outcome.content, self.output_limit + _TOOL_OUTPUT_SLACK),
                    "is_error": outcome.is_error,
                }
            )
        self.transcript.write("tool_results", {"step": self.steps, "results": results})
        self.messages.append({"role": "user", "content": results})

    def _end(self, stop_reason: str, note: str) -> AgentResult:
        """The conversation cannot go on: say why (a fix round will not continue it)."""
        self.ended = note
        self.transcript.write("ended", {"step": self.steps, "stop_reason": stop_reason, "note": note})
        return self._result(f"The agent stopped: {note}.", stop_reason, note)

    def _result(self, summary: str, stop_reason: str, note: str = "") -> AgentResult:
        return AgentResult(
            summary, self.steps, stop_reason, self.usage, self.tool_errors, note, list(self.context_events)
        )


def _run_tool(editor: EditorTool, shell: CommandTool, name: str, tool_input: object) -> ToolOutcome:
    if not isinstance(tool_input, dict):
        return ToolOutcome("Error: tool input must be an object.", True)
    if name == EDITOR_TOOL:
        return editor.handle(tool_input)
    if name == COMMAND_TOOL:
        return shell.handle(tool_input)
    return ToolOutcome(f"Error: unknown tool {name!r}; use {EDITOR_TOOL} or {COMMAND_TOOL}.", True)
