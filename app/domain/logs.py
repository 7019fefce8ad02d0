"""Bounded text for logs and tool output: keep the head and the tail, say exactly what was left out.

Sizes are UTF-8 bytes. Cuts never split a multi-byte character, and prefer line boundaries when one is
near. ``HeadTailBuffer`` does the same for a byte stream of unknown length (a running process) while
holding at most ``2 * limit`` bytes.
"""

from __future__ import annotations

_ELLIPSIS = "…"
# How far (as a fraction of the kept piece) a cut may move to land on a line boundary.
_LINE_SNAP = 0.2


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def omitted_marker(n_bytes: int) -> str:
    """The line put where bytes were left out, e.g. ``… [12345 bytes omitted] …``."""
    return f"{_ELLIPSIS} [{n_bytes} bytes omitted] {_ELLIPSIS}\n"


def _is_cont(byte: int) -> bool:
    return (byte & 0xC0) == 0x80


def _seq_len(lead: int) -> int:
    if lead < 0x80:
        return 1
    if lead >> 5 == 0b110:
        return 2
    if lead >> 4 == 0b1110:
        return 3
    if lead >> 3 == 0b11110:
        return 4
    return 1  # invalid lead byte: treat as a character of its own


def _head_cut(data: bytes, n: int) -> int:
    """Largest k <= n such that ``data[:k]`` does not end inside a UTF-8 sequence."""
    k = min(n, len(data))
    if k <= 0:
        return 0
    # Find the start of the last (possibly partial) character in data[:k].
    i = k - 1
    while i > 0 and _is_cont(data[i]) and k - i < 4:
        i -= 1
    return k if k - i >= _seq_len(data[i]) else i


def _tail_start(data: bytes, n: int) -> int:
    """Smallest index s >= len(data) - n such that ``data[s:]`` starts on a character boundary."""
    s = max(0, len(data) - n)
    stop = min(len(data), s + 3)
    while s < stop and _is_cont(data[s]):
        s += 1
    return s


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _assemble(head_src: bytes, tail_src: bytes, total: int, limit: int, head_fraction: float = 0.5) -> str:
    """Head of ``head_src`` + marker + tail of ``tail_src`` in at most ``limit`` bytes.

    ``head_src`` is a prefix and ``tail_src`` a suffix of the full data (``total`` bytes); together
    they may not cover it. The marker states exactly how many bytes of the full data are not shown.
    """
    worst_marker = len(("\n" + omitted_marker(total)).encode("utf-8"))
    budget = limit - worst_marker
    if budget < 2:
        # Too small for a marker: the tail is usually what matters.
        return _decode(tail_src[_tail_start(tail_src, limit) :])
    h = min(int(budget * min(max(head_fraction, 0.0), 1.0)), len(head_src))
    t = min(budget - h, len(tail_src))
    h = min(budget - t, len(head_src))  # give unused tail budget back to the head
    h = _head_cut(head_src, h)
    nl = head_src.rfind(b"\n", int(h * (1 - _LINE_SNAP)), h)
    if nl >= 0:
        h = nl + 1
    head = head_src[:h]
    start = _tail_start(tail_src, t)
    nl = tail_src.find(b"\n", start, start + int((len(tail_src) - start) * _LINE_SNAP))
    if nl >= 0:
        start = nl + 1
    tail_bytes = tail_src[start:]
    omitted = total - len(head) - len(tail_bytes)
    sep = "" if not head or head.endswith(b"\n") else "\n"
    return _decode(head) + sep + omitted_marker(omitted) + _decode(tail_bytes)


def bound_text(text: str, limit: int, *, head_fraction: float = 0.5) -> str:
    """``text`` if it fits in ``limit`` UTF-8 bytes, else its head and tail around an omission marker.

    The result is at most ``limit`` bytes (for limits of a few dozen bytes or more; below that only
    the tail is kept) and the marker states exactly how many bytes were left out. ``head_fraction`` is
    the share of the kept bytes taken from the start (the rest from the end).
    """
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return _assemble(data, data, len(data), limit, head_fraction)


def tail(text: str, limit: int) -> str:
    """The last at most ``limit`` UTF-8 bytes of ``text``, starting on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return _decode(data[_tail_start(data, limit) :])


def head(text: str, limit: int) -> str:
    """The first at most ``limit`` UTF-8 bytes of ``text``, ending on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return _decode(data[: _head_cut(data, limit)])


class HeadTailBuffer:
    """Collects a byte stream, keeping the first ``limit`` and the last ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.total = 0
        self._head = bytearray()
        self._tail = bytearray()

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            excess = len(self._tail) - self.limit
            if excess > 0:
                del self._tail[:excess]

    def text(self) -> str:
        """The stream as text, bounded like :func:`bound_text` (invalid UTF-8 is replaced)."""
        if self.total <= self.limit:
            return _decode(bytes(self._head))
        return _assemble(bytes(self._head), bytes(self._tail), self.total, self.limit)
