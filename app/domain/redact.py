"""Redaction of secrets from any text that leaves the process (logs, comments, prompts, errors)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Token shapes GitHub and Anthropic issue, redacted even when Otto did not know the value.
_TOKEN_PATTERNS = [
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{10,}\b"),
    re.compile(r"(?i)(authorization:\s*(?:basic|bearer|token)\s+)[A-Za-z0-9+/=._\-]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
]


def _variants(secret: str) -> list[str]:
    """The secret, reversed, and the encodings it travels in (git's basic auth header is base64)."""
    out = [secret, secret[::-1], secret.encode().hex()]
    for prefix in ("x-access-token:", ""):
        raw = f"{prefix}{secret}".encode()
        out += [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    return out


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret (and anything shaped like a token) in ``text``."""
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        for variant in _variants(secret):
            text = text.replace(variant, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text
