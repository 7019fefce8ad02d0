"""Reading what an attempt left: the agent's JSONL transcript as a conversation, and a unified diff.

Everything in them is attacker-controlled text (model output, tool output, file names): these functions
only structure and bound it; the templates escape it. Long texts are clipped to a head with a reference
(``ref``) by which the full text can be fetched on demand (``piece``); a transcript with many steps is shown
as its first and last steps with the middle collapsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.domain.usage import Usage

CLIP_CHARS = 1_500
PROMPT_CLIP_CHARS = 3_000
EDGE_STEPS = 12  # steps shown at each end of a long transcript


@dataclass(frozen=True)
class Piece:
    """A text, clipped to ``text``; ``full_len`` is the whole length, ``ref`` names it for ``piece``."""

    text: str
    full_len: int
    ref: str

    @property
    def clipped(self) -> bool:
        return self.full_len > len(self.text)

    @property
    def more(self) -> int:
        return self.full_len - len(self.text)


def _piece(text: str, ref: str, limit: int = CLIP_CHARS) -> Piece:
    return Piece(text[:limit], len(text), ref)


@dataclass
class ToolCall:
    id: str
    name: str
    headline: str
    fields: list[tuple[str, Piece]]
    result: Piece | None = None
    is_error: bool = False


@dataclass
class Step:
    line: int
    number: int
    texts: list[Piece] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    stop_reason: str = ""


@dataclass
class Message:
    line: int
    role: str  # "system" | "user"
    text: Piece


@dataclass
class Gap:
    """Steps left out of a bounded view."""

    steps: int
    first: int
    last: int


Entry = Step | Message


@dataclass
class Conversation:
    entries: list[Entry]
    steps: int
    usage: Usage
    unreadable_lines: int = 0

    def view(self, show_all: bool = False, edge: int = EDGE_STEPS) -> list[Entry | Gap]:
        """All entries, or (when there are many steps) those up to the ``edge``-th step and from the
        ``edge``-th last step on, with one Gap in between."""
        if show_all or self.steps <= 2 * edge + 2:
            return list(self.entries)
        out: list[Entry | Gap] = []
        seen = 0
        gap: Gap | None = None
        for e in self.entries:
            if isinstance(e, Step):
                seen += 1
            if edge < seen <= self.steps - edge:
                if isinstance(e, Step):
                    if gap is None:
                        gap = Gap(0, e.number, e.number)
                        out.append(gap)
                    gap.steps += 1
                    gap.last = e.number
                continue
            out.append(e)
        return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in content if b is not None
        )
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


def _headline(name: str, inp: dict[str, Any]) -> tuple[str, list[str]]:
    """A one-line summary of a tool call and the input keys it already shows."""
    if name == "run_command" and isinstance(inp.get("command"), str) and "\n" not in inp["command"]:
        return f"$ {inp['command'][:300]}", ["command"]
    if isinstance(inp.get("command"), str) and isinstance(inp.get("path"), str):
        return f"{inp['command'][:40]} {inp['path'][:300]}", ["command", "path"]
    return name, []


def _call(line: int, index: int, block: dict[str, Any]) -> ToolCall:
    name = str(block.get("name", "?"))
    raw = block.get("input")
    inp = raw if isinstance(raw, dict) else {"input": raw}
    headline, shown = _headline(name, inp)
    fields = [
        (str(k), _piece(_value_text(v), f"{line}.{index}.input.{k}"))
        for k, v in inp.items()
        if k not in shown and isinstance(k, str)
    ]
    return ToolCall(id=str(block.get("id", "")), name=name, headline=headline, fields=fields)


def parse_transcript(lines: list[bytes]) -> Conversation:
    """The transcript's lines (one JSON object each; a last line cut short by a running upload is skipped)."""
    entries: list[Entry] = []
    calls: dict[str, ToolCall] = {}
    usage = Usage()
    bad = 0
    steps = 0
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            kind = record["kind"]
            payload = record["payload"]
            if not isinstance(payload, dict):
                raise TypeError("payload is not an object")
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        if kind in ("system", "user"):
            text = _text_of(payload.get("system") if kind == "system" else payload.get("content"))
            entries.append(Message(n, kind, _piece(text, f"{n}.0.text", PROMPT_CLIP_CHARS)))
        elif kind == "assistant":
            steps += 1
            step = Step(
                line=n,
                number=int(payload.get("step") or steps),
                stop_reason=str(payload.get("stop_reason") or ""),
            )
            for i, block in enumerate(payload.get("content") or []):
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text":
                    step.texts.append(_piece(str(block.get("text", "")), f"{n}.{i}.text"))
                elif block.get("type") == "tool_use":
                    call = _call(n, i, block)
                    step.calls.append(call)
                    calls[call.id] = call
            if isinstance(payload.get("usage"), dict):
                try:
                    step.usage = Usage.model_validate(payload["usage"])
                    usage = usage + step.usage
                except ValueError:
                    step.usage = None
            entries.append(step)
        elif kind == "tool_results":
            for i, result in enumerate(payload.get("results") or []):
                if not isinstance(result, dict):
                    continue
                found = calls.get(str(result.get("tool_use_id", "")))
                if found is not None:
                    found.result = _piece(_text_of(result.get("content")), f"{n}.{i}.result")
                    found.is_error = bool(result.get("is_error"))
        else:
            bad += 1
    return Conversation(entries, steps, usage, bad)


def piece(lines: list[bytes], ref: str) -> str | None:
    """The full text a Piece's ``ref`` names, or None when there is no such piece."""
    parts = ref.split(".", 3)
    if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    line, index, what = int(parts[0]), int(parts[1]), parts[2]
    if line >= len(lines):
        return None
    try:
        record = json.loads(lines[line])
        kind, payload = record["kind"], record["payload"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(payload, dict):
        return None
    if what == "text" and kind in ("system", "user") and index == 0:
        return _text_of(payload.get("system") if kind == "system" else payload.get("content"))
    blocks = payload.get("results" if what == "result" else "content")
    if not isinstance(blocks, list) or index >= len(blocks) or not isinstance(blocks[index], dict):
        return None
    block = blocks[index]
    if what == "text" and kind == "assistant" and block.get("type") == "text":
        return str(block.get("text", ""))
    if what == "result" and kind == "tool_results":
        return _text_of(block.get("content"))
    if what == "input" and kind == "assistant" and block.get("type") == "tool_use" and len(parts) == 4:
        inp = block.get("input")
        inp = inp if isinstance(inp, dict) else {"input": inp}
        return _value_text(inp[parts[3]]) if parts[3] in inp else None
    return None


# ------------------------------------------------------------------------------------------------- diffs


@dataclass
class FileDiff:
    path: str
    old_path: str | None = None
    status: str = "modified"  # added | deleted | renamed | modified | binary
    lines: list[tuple[str, str]] = field(default_factory=list)  # (kind, text): hunk|add|del|ctx|meta
    added: int = 0
    removed: int = 0


@dataclass
class Diff:
    files: list[FileDiff]
    shown_lines: int
    total_lines: int

    @property
    def truncated(self) -> bool:
        return self.total_lines > self.shown_lines


def _strip_prefix(name: str) -> str:
    name = name.strip()
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse_diff(text: str, max_lines: int = 3_000) -> Diff:
    """A unified diff (``git diff``) by file, keeping at most ``max_lines`` body lines in all."""
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    shown = total = 0
    for line in text.splitlines():
        if line.startswith("diff --git "):
            rest = line[len("diff --git ") :]
            half = rest.find(" b/")
            cur = FileDiff(path=_strip_prefix(rest[half + 1 :] if half >= 0 else rest))
            files.append(cur)
            continue
        if cur is None:
            continue
        if line.startswith("--- ") and not cur.lines:
            old = line[4:]
            if old.strip() == "/dev/null":
                cur.status = "added"
            continue
        if line.startswith("+++ ") and not cur.lines:
            new = line[4:]
            if new.strip() == "/dev/null":
                cur.status = "deleted"
            else:
                cur.path = _strip_prefix(new)
            continue
        if line.startswith(("rename from ", "similarity index", "new file mode", "deleted file mode")):
            if line.startswith("rename from "):
                cur.old_path, cur.status = line[len("rename from ") :], "renamed"
            elif line.startswith("new file mode"):
                cur.status = "added"
            elif line.startswith("deleted file mode"):
                cur.status = "deleted"
            continue
        if line.startswith(("rename to ", "index ", "old mode", "new mode")):
            continue
        if line.startswith("Binary files"):
            cur.status = "binary"
            continue
        kind = {"@": "hunk", "+": "add", "-": "del", " ": "ctx"}.get(line[:1], "meta")
        if kind == "add":
            cur.added += 1
        elif kind == "del":
            cur.removed += 1
        total += 1
        if shown < max_lines:
            cur.lines.append((kind, line))
            shown += 1
    return Diff(files, shown, total)
