"""Untrusted text (issue bodies, comments, repository files) becomes quoted data for the model.

Hidden content is stripped first so nothing reaches the prompt unseen by the humans who read the issue:
HTML comments, invisible and zero-width characters (Unicode format characters, tag characters, bidi
controls), image alt text, and HTML attributes that carry text readers don't see.
"""

from __future__ import annotations

import re
import unicodedata

_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")
_MD_IMAGE_REF = re.compile(r"!\[[^\]]*\]\[([^\]]*)\]")
_HTML_HIDDEN_ATTR = re.compile(
    r"""\s(?:alt|title|aria-label|data-[\w-]+)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.I
)
_HTML_TAG = re.compile(r"<[a-zA-Z][^>]*>")
_HIDDEN_BLOCKS = re.compile(
    r"<(?P<tag>[a-zA-Z]+)\b[^>]*\b(?:hidden|style\s*=\s*[\"'][^\"']*display\s*:\s*none)[^>]*>.*?</(?P=tag)\s*>",
    re.S | re.I,
)
_EXTRA_INVISIBLE = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}


def _visible_char(ch: str) -> bool:
    if ch in "\n\t":
        return True
    if ch in _EXTRA_INVISIBLE:
        return False
    cat = unicodedata.category(ch)
    # Cf: format (zero-width space/joiners, bidi controls, tag characters, BOM); Cc: control; Co: private use
    return cat not in {"Cf", "Cc", "Co", "Cs"}


def strip_hidden(text: str) -> str:
    text = _HTML_COMMENT.sub("", text)
    text = _HIDDEN_BLOCKS.sub("", text)
    text = _MD_IMAGE.sub(r"![](\1)", text)
    text = _MD_IMAGE_REF.sub(r"![][\1]", text)
    text = _HTML_TAG.sub(lambda m: _HTML_HIDDEN_ATTR.sub("", m.group(0)), text)
    text = "".join(ch for ch in text if _visible_char(ch))
    return text.replace("\r\n", "\n")


def quote_untrusted(source: str, text: str, limit: int = 20_000) -> str:
    """Wrap cleaned untrusted text as a delimited data block the prompts tell the model not to obey."""
    cleaned = strip_hidden(text)
    if len(cleaned) > limit:
        cleaned = cleaned[:limit] + f"\n[… {len(cleaned) - limit} characters cut]"
    # the data can't close its own block
    cleaned = cleaned.replace("</untrusted", "&lt;/untrusted")
    return f'<untrusted source="{source}">\n{cleaned}\n</untrusted>'


_MD_ANY_IMAGE = re.compile(r"!\[([^\]]*)\]\s*[\(\[]([^)\]]*)[\)\]]")
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")
_ISSUE_REF = re.compile(r"(?<![\w&])#(?=\d)")
_ZWJ = "\u2060"  # word joiner: invisible, breaks GitHub's @mention and #reference autolinks


def neutralise_markdown(text: str) -> str:
    """Model- or user-written text made safe to embed in what Otto posts on GitHub.

    No HTML (``<`` escaped, so no ``<img>``, ``<picture>``, ``<details>`` or comments that hide text), no
    images (``![alt](url)`` — a remote fetch GitHub makes for every reader, a way to smuggle data out —
    becomes ``[image: alt] `url```), no @mentions (nobody is pinged by text Otto did not write) and no
    ``#123`` references (no cross-links, no "closes #N" keywords that would close issues on merge).
    """
    text = strip_hidden(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_ANY_IMAGE.sub(lambda m: f"[image: {m.group(1)}] `{m.group(2).replace('`', '')}`", text)
    text = _MENTION.sub("@" + _ZWJ, text)
    return _ISSUE_REF.sub("#" + _ZWJ, text)


def quote_markdown(text: str) -> str:
    """:func:`neutralise_markdown`, then as a Markdown block quote (visibly someone else's words)."""
    lines = neutralise_markdown(text).strip().splitlines() or [""]
    return "\n".join("> " + line if line.strip() else ">" for line in lines)
