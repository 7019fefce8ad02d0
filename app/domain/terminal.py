"""Terminal output made plain text: what Otto shows the model, posts to GitHub or renders.

Commands run with ``NO_COLOR``/``TERM=dumb`` and friends, but plenty of tools colour anyway (``pytest
--color=yes``, ``FORCE_COLOR`` in a project's config). Escape sequences cost the model tokens and turn a PR's
log into noise, so they are removed here: ECMA-48 control sequences (CSI, OSC, DCS and the rest), the
carriage-return redraws of progress bars (the last state of each line is kept), and every other control
character but tab and newline.
"""

from __future__ import annotations

import re

_ESCAPES = re.compile(
    r"""
      \x1b\[[0-?]*[\ -/]*[@-~]               # CSI: colours, cursor movement, erase
    | \x9b[0-?]*[\ -/]*[@-~]                 # the same, 8-bit introducer
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?     # OSC: titles, hyperlinks (to BEL or ST)
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?          # DCS, SOS, PM, APC strings
    | \x1b[\ -/]*[0-~]                       # the other escape sequences (charsets, keypad modes)
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _last_redraw(line: str) -> str:
    """``"10%\r50%\r100%"`` → ``"100%"``: what a terminal would show after the carriage returns."""
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


def plain_text(text: str) -> str:
    """``text`` without escape sequences, carriage-return redraws or control characters (tabs and
    newlines kept)."""
    text = _ESCAPES.sub("", text).replace("\r\n", "\n")
    if "\r" in text:
        text = "\n".join(_last_redraw(line) for line in text.split("\n"))
    return _CONTROLS.sub("", text)
