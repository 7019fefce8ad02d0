"""How the scripted server sizes a prompt and simulates Anthropic's prompt cache.

A request's prompt is the sequence of its *blocks* in prefix order: every tool definition, every system
block (a string system prompt is one block), then every content block of every message (a string content
is one block), each serialised canonically (sorted keys, ``cache_control`` removed) and, for messages,
prefixed with the role. Tokens are characters / 4 (``count_tokens`` and ``usage`` use the same figure).

The prompt cache follows Anthropic's rules as documented for ``cache_control: {"type": "ephemeral"}``:

- A block with ``cache_control`` is a *breakpoint*; at most :data:`MAX_BREAKPOINTS` per request (more is a
  400, as from the API).
- The cached entity is the exact prefix up to and including a breakpoint's block (hashed with the model and
  the API key: caches are not shared between models or organisations).
- A read is the longest cached prefix that ends at a breakpoint or at one of the
  :data:`LOOKBACK_BLOCKS` block boundaries before a breakpoint; it is reported as
  ``cache_read_input_tokens``.
- Every breakpoint's prefix is written (so the next request can read it); what lies between the read and
  the last breakpoint is reported as ``cache_creation_input_tokens``; everything else is ``input_tokens``.
- Prefixes shorter than ``min_tokens`` are not cached (the real minimum is 1024 tokens for Sonnet and
  Opus; the default here is 0 so small test prompts cache). Entries do not expire.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20


def tokens(chars: int) -> int:
    return chars // 4


def canon(block: Any) -> tuple[str, bool]:
    """(canonical JSON of a block without its cache_control, whether it carries a cache_control)."""
    if isinstance(block, dict):
        cached = block.get("cache_control") is not None
        block = {k: v for k, v in block.items() if k != "cache_control"}
    else:
        cached = False
    return json.dumps(block, sort_keys=True, ensure_ascii=False), cached


def prompt_blocks(body: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """The prompt's blocks in prefix order: tools, system, messages (see the module docstring)."""
    items: list[tuple[str, bool]] = []
    for tool in body.get("tools") or []:
        items.append(canon(tool))
    system = body.get("system")
    if isinstance(system, list):
        items.extend(canon(b) for b in system)
    elif system:
        items.append(canon(system))
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        blocks = content if isinstance(content, list) else [content]
        role = str(msg.get("role"))
        items.extend((role + ":" + c, cc) for c, cc in (canon(b) for b in blocks))
    return items


def prompt_tokens(body: Mapping[str, Any]) -> int:
    return tokens(sum(len(text) for text, _ in prompt_blocks(body)))


@dataclass(frozen=True)
class CacheUse:
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    breakpoints: int


class PromptCache:
    """The set of cached prefix hashes; not thread-safe (the server holds its lock around :meth:`use`)."""

    def __init__(self, min_tokens: int = 0) -> None:
        self.min_tokens = min_tokens
        self._entries: set[str] = set()

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def use(self, body: Mapping[str, Any], api_key: str) -> CacheUse:
        """Read and write the cache for one request; the prompt's token split."""
        blocks = prompt_blocks(body)
        digest = hashlib.sha256(f"{api_key}\x00{body.get('model')}\x00".encode())
        ends: list[int] = []  # prefix length in characters after each block
        hashes: list[str] = []
        breakpoints: list[int] = []  # block indices with cache_control
        chars = 0
        for i, (text, cached) in enumerate(blocks):
            digest.update(text.encode())
            digest.update(b"\x00")
            chars += len(text)
            ends.append(chars)
            hashes.append(digest.copy().hexdigest())
            if cached:
                breakpoints.append(i)
        total = tokens(chars)
        if not breakpoints:
            return CacheUse(max(total, 1), 0, 0, 0)
        read = 0
        for bp in breakpoints:
            for j in range(bp, max(-1, bp - LOOKBACK_BLOCKS - 1), -1):
                if hashes[j] in self._entries:
                    read = max(read, ends[j])
                    break
        written = [bp for bp in breakpoints if tokens(ends[bp]) >= self.min_tokens]
        self._entries.update(hashes[bp] for bp in written)
        created = max(0, (ends[written[-1]] if written else 0) - read)
        read_t, created_t = tokens(read), tokens(created)
        return CacheUse(max(total - read_t - created_t, 0), created_t, read_t, len(breakpoints))


def breakpoint_count(body: Mapping[str, Any]) -> int:
    return sum(1 for _text, cached in prompt_blocks(body) if cached)
