"""The coding agent's conversation as the model sees it: its size, its cache breakpoints, how it shrinks.

Messages here are Messages API message dicts as sent on the wire (``{"role", "content"}``, content a string
or a list of block dicts). Every function is pure: it returns new lists and never mutates its input.

- **Size**: a local estimate calibrated against what the API reports (:class:`PromptMeter`), not a
  ``count_tokens`` round trip per step: the usage of every answer tells the exact size of the prompt just
  sent, so only the newest turn is estimated (conservatively, at 3 bytes a token).
- **Caching** (:func:`with_cache_breakpoints`): a ``cache_control`` breakpoint on the last block of the
  newest message and of the message that ended the previous request, so each request reads everything
  before its newest turn from the cache and writes only that turn. With the system prompt's and the tool
  list's own breakpoints that is the API's maximum of four.
- **Shrinking** (:func:`shrink`), the way Anthropic's context editing does it: old tool results become a
  short placeholder (the latest few are kept), big string inputs of old tool calls likewise; only when that
  is not enough, the oldest tool turns are *elided*: removed in pairs (the call and its results, so the
  conversation stays valid) and replaced by a short note appended to the task prompt. The task prompt,
  later prompts (fix rounds) and the agent's own text of turns that are not elided are always kept. Each
  shrink goes well below the threshold (to ``low_water``) so it happens rarely: every shrink changes the
  prompt's early part and so costs one cache write of what follows it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.domain.logs import bound_text, utf8_len

Message = dict[str, Any]

# Context windows in tokens, longest prefix wins. Every current Claude model has 200k by default (1M only
# with a beta header Otto does not send); an unknown model gets the smallest known window.
CONTEXT_WINDOWS: dict[str, int] = {"claude-": 200_000}
DEFAULT_WINDOW = 200_000

CLEARED_PREFIX = "[cleared to save context:"
NOTE_PREFIX = "[otto-elided-turns: "
NOTE_LIMIT = 4_000  # bytes of the elision note, at most
_INPUT_KEEP_BYTES = 256  # string inputs of old tool calls longer than this are cleared
_ELIDED_TEXT = 160  # characters of an elided turn's own text kept in the note


def context_window(model: str) -> int:
    best = ""
    for prefix in CONTEXT_WINDOWS:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return CONTEXT_WINDOWS[best] if best else DEFAULT_WINDOW


@dataclass(frozen=True)
class ContextPolicy:
    """When and how far the agent's prompt is shrunk."""

    threshold_tokens: int  # shrink before sending a prompt estimated above this
    window_tokens: int  # the model's context window: a prompt above it is never sent
    keep_tool_results: int = 4  # the latest tool results (and tool inputs) are never cleared
    low_water: float = 0.5  # a shrink goes down to this share of the threshold when it can

    @classmethod
    def for_model(
        cls, model: str, threshold_tokens: int, keep_tool_results: int, max_output: int
    ) -> ContextPolicy:
        """The threshold is capped so the prompt plus the largest answer still fit in the window."""
        window = context_window(model)
        cap = max(window - max_output - window // 20, window // 4)
        return cls(min(threshold_tokens, cap), window, max(keep_tool_results, 1))

    @property
    def target_tokens(self) -> int:
        return int(self.threshold_tokens * self.low_water)


# ------------------------------------------------------------------------------------------------ size


def json_bytes(value: Any) -> int:
    return utf8_len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


@dataclass
class PromptMeter:
    """Estimates a prompt's tokens from its size in bytes, calibrated by what the API reported.

    After each answer :meth:`observe` records (bytes sent, tokens the usage reported). A prompt that grew
    since is estimated as those tokens plus the new bytes at ``max(observed ratio, prior)``; a smaller one
    (it was shrunk) at the observed ratio. Before any answer the prior is used (3 bytes a token: code and
    JSON run at 3–4 bytes a token for Claude; CJK text nearer 3).
    """

    prior_tokens_per_byte: float = 1 / 3
    last: tuple[int, int] | None = None  # (bytes, tokens) of the last prompt the API counted

    def observe(self, nbytes: int, ntokens: int) -> None:
        if nbytes > 0 and ntokens > 0:
            self.last = (nbytes, ntokens)

    def estimate(self, nbytes: int) -> int:
        if self.last is None:
            return math.ceil(nbytes * self.prior_tokens_per_byte)
        last_bytes, last_tokens = self.last
        ratio = last_tokens / last_bytes
        if nbytes <= last_bytes:
            return math.ceil(nbytes * ratio)
        return last_tokens + math.ceil((nbytes - last_bytes) * max(ratio, self.prior_tokens_per_byte))


# ------------------------------------------------------------------------------------------------ cache


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(b) if isinstance(b, dict) else b for b in content]


def with_cache_breakpoints(messages: Sequence[Message]) -> list[Message]:
    """A copy with ``cache_control`` on the last block of the newest message and of the newest user message
    before it (where the previous request ended): two breakpoints, whatever the conversation's length."""
    out = [dict(m) for m in messages]
    if not out:
        return out
    marks = [len(out) - 1]
    earlier = next((i for i in range(len(out) - 2, -1, -1) if out[i].get("role") == "user"), None)
    if earlier is not None:
        marks.append(earlier)
    for i in marks:
        blocks = _blocks(out[i].get("content", ""))
        if blocks and isinstance(blocks[-1], dict):
            blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
            out[i]["content"] = blocks
    return out


# ------------------------------------------------------------------------------------------------ validity


def _tool_use_ids(message: Message) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [str(b.get("id")) for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]


def _tool_result_ids(message: Message) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        str(b.get("tool_use_id")) for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


def conversation_problems(messages: Sequence[Message]) -> list[str]:
    """Why the API would reject this conversation (empty when it is valid): the first message is the
    user's, user messages never follow each other, every tool call is answered by the next message and
    every tool result answers a call of the message before it. Consecutive assistant messages are allowed:
    the API joins them (that is how a paused turn is continued)."""
    problems: list[str] = []
    if not messages:
        return ["the conversation is empty"]
    if messages[0].get("role") != "user":
        problems.append("the first message is not the user's")
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant"):
            problems.append(f"message {i} has role {role!r}")
            continue
        if role == "user" and i > 0 and messages[i - 1].get("role") == "user":
            problems.append(f"messages {i - 1} and {i} are both the user's")
        calls = _tool_use_ids(m) if role == "assistant" else []
        if calls:
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            answered = _tool_result_ids(nxt) if nxt is not None and nxt.get("role") == "user" else []
            if sorted(answered) != sorted(calls):
                problems.append(f"the tool calls of message {i} are not answered by message {i + 1}")
        results = _tool_result_ids(m) if role == "user" else []
        if results:
            prev = messages[i - 1] if i > 0 else {}
            if not set(results) <= set(_tool_use_ids(prev)):
                problems.append(f"message {i} has tool results for calls message {i - 1} did not make")
    return problems


# ------------------------------------------------------------------------------------------------ shrinking


def _is_cleared(content: Any) -> bool:
    return isinstance(content, str) and content.startswith(CLEARED_PREFIX) and len(content) < 200


def placeholder(n_bytes: int) -> str:
    return f"{CLEARED_PREFIX} {n_bytes} bytes of output were here; run the tool again if you need them]"


def clear_tool_results(messages: Sequence[Message], keep: int) -> tuple[list[Message], int]:
    """Every tool result but the latest ``keep`` replaced by a placeholder: (messages, how many cleared)."""
    positions = [
        (i, j)
        for i, m in enumerate(messages)
        if m.get("role") == "user" and isinstance(m.get("content"), list)
        for j, b in enumerate(m["content"])
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    old = positions[: max(len(positions) - keep, 0)]
    out = [dict(m) for m in messages]
    cleared = 0
    for i, j in old:
        block = out[i]["content"][j]
        if _is_cleared(block.get("content")):
            continue
        if out[i]["content"] is messages[i]["content"]:
            out[i]["content"] = list(messages[i]["content"])
        out[i]["content"][j] = {**block, "content": placeholder(json_bytes(block.get("content", "")))}
        cleared += 1
    return out, cleared


def clear_tool_inputs(messages: Sequence[Message], keep: int) -> tuple[list[Message], int]:
    """Long string inputs (file contents, patches) of every tool call but the latest ``keep`` replaced by a
    placeholder; the call itself, its id and its short inputs stay. (messages, how many calls changed)."""
    positions = [
        (i, j)
        for i, m in enumerate(messages)
        if m.get("role") == "assistant" and isinstance(m.get("content"), list)
        for j, b in enumerate(m["content"])
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    out = [dict(m) for m in messages]
    changed = 0
    for i, j in positions[: max(len(positions) - keep, 0)]:
        block = out[i]["content"][j]
        tool_input = block.get("input")
        if not isinstance(tool_input, dict):
            continue
        new_input = {
            k: f"{CLEARED_PREFIX} {utf8_len(v)} bytes]"
            if isinstance(v, str) and utf8_len(v) > _INPUT_KEEP_BYTES
            else v
            for k, v in tool_input.items()
        }
        if new_input != tool_input:
            if out[i]["content"] is messages[i]["content"]:
                out[i]["content"] = list(messages[i]["content"])
            out[i]["content"][j] = {**block, "input": new_input}
            changed += 1
    return out, changed


def _elidable(messages: Sequence[Message], i: int) -> bool:
    """Whether messages i, i+1 are a tool turn: an assistant's calls and the user's results, nothing else."""
    if i + 1 >= len(messages) or messages[i].get("role") != "assistant":
        return False
    calls = _tool_use_ids(messages[i])
    nxt = messages[i + 1]
    content = nxt.get("content")
    if not calls or nxt.get("role") != "user" or not isinstance(content, list):
        return False
    only_results = all(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
    return only_results and sorted(_tool_result_ids(nxt)) == sorted(calls)


def _turn_line(assistant: Message) -> str:
    """One line of the elision note: the turn's own text (shortened) and its tool calls."""
    text, calls = "", []
    content = assistant.get("content")
    for b in content if isinstance(content, list) else []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            text += " " + str(b.get("text", ""))
        elif b.get("type") == "tool_use":
            shown = json.dumps(b.get("input", {}), ensure_ascii=False, sort_keys=True)
            calls.append(f"{b.get('name')} {shown[:100]}{'…' if len(shown) > 100 else ''}")
    text = " ".join(text.split())
    if len(text) > _ELIDED_TEXT:
        text = text[:_ELIDED_TEXT] + "…"
    return "- " + (f"{text} → " if text else "") + "; ".join(calls)


def _split_note(first: Message) -> tuple[list[Any], int, list[str]]:
    """The first message's blocks without an elision note, and the note's count and lines (if any)."""
    blocks = _blocks(first.get("content", ""))
    if (
        len(blocks) > 1
        and isinstance(blocks[-1], dict)
        and str(blocks[-1].get("text", "")).startswith(NOTE_PREFIX)
    ):
        text = str(blocks[-1]["text"])
        count = int(text[len(NOTE_PREFIX) :].split("]", 1)[0])
        lines = [line for line in text.splitlines()[1:] if line.startswith("- ")]
        return blocks[:-1], count, lines
    return blocks, 0, []


def elision_note(count: int, lines: Sequence[str]) -> str:
    head = (
        f"{NOTE_PREFIX}{count}] {count} earlier tool turns were removed to save room in the context. "
        "What they did, oldest first (re-run a command or view a file again if you need its output):\n"
    )
    return bound_text(head + "\n".join(lines) + "\n", NOTE_LIMIT, head_fraction=0.3)


@dataclass
class Shrunk:
    messages: list[Message]
    tokens_before: int
    tokens_after: int
    cleared_results: int = 0
    cleared_inputs: int = 0
    elided_turns: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.cleared_results or self.cleared_inputs or self.elided_turns)

    def record(self) -> dict[str, Any]:
        return {
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "cleared_tool_results": self.cleared_results,
            "cleared_tool_inputs": self.cleared_inputs,
            "elided_turns": self.elided_turns,
        }


def shrink(
    messages: Sequence[Message],
    *,
    fixed_bytes: int,
    estimate: Callable[[int], int],
    target_tokens: int,
    keep: int,
) -> Shrunk:
    """Shrink ``messages`` towards ``target_tokens``: clear old tool results and inputs (keeping the latest
    ``keep``), then, while still above the target, elide the oldest tool turns outside the latest ``keep``
    (then outside the latest one). ``fixed_bytes`` is the rest of the request (system, tools);
    ``estimate`` turns bytes into tokens. The result may still be above the target when nothing more can go.
    """

    def tokens(msgs: Sequence[Message]) -> int:
        return estimate(fixed_bytes + sum(json_bytes(m) + 1 for m in msgs))

    result = Shrunk(list(messages), tokens(messages), 0)
    msgs: list[Message] = list(messages)
    for protect in dict.fromkeys((keep, 1)):
        msgs, n = clear_tool_results(msgs, protect)
        result.cleared_results += n
        msgs, n = clear_tool_inputs(msgs, protect)
        result.cleared_inputs += n
        if tokens(msgs) <= target_tokens:
            break
        msgs = _elide(msgs, result, fixed_bytes, estimate, target_tokens, protect)
        if tokens(msgs) <= target_tokens:
            break
    result.messages = msgs
    result.tokens_after = tokens(msgs)
    return result


def _elide(
    msgs: list[Message],
    result: Shrunk,
    fixed_bytes: int,
    estimate: Callable[[int], int],
    target_tokens: int,
    protect: int,
) -> list[Message]:
    sizes = [json_bytes(m) + 1 for m in msgs]
    total = fixed_bytes + sum(sizes) + NOTE_LIMIT
    last_allowed = len(msgs) - 2 * protect  # tool turns in the latest ``protect`` pairs stay
    drop: set[int] = set()
    new_lines: list[str] = []
    i = 1
    while i < last_allowed and estimate(total) > target_tokens:
        if _elidable(msgs, i):
            drop.update((i, i + 1))
            total -= sizes[i] + sizes[i + 1]
            new_lines.append(_turn_line(msgs[i]))
            i += 2
        else:
            i += 1
    if not drop:
        return msgs
    result.elided_turns += len(new_lines)
    result.notes.extend(new_lines)
    first_blocks, count, lines = _split_note(msgs[0])
    note = elision_note(count + len(new_lines), [*lines, *new_lines])
    first = {**msgs[0], "content": [*first_blocks, {"type": "text", "text": note}]}
    return [first] + [m for k, m in enumerate(msgs) if k > 0 and k not in drop]
