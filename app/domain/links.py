"""Links to Mission Control's pages from ``OTTO_PUBLIC_URL`` and a run id (``otto/<repo id>/<issue>``)."""

from __future__ import annotations

import re
from urllib.parse import quote

_RUN_ID = re.compile(r"otto/(?P<repo>\d+)/(?P<issue>\d+)")


def run_path(run_id: str) -> str | None:
    m = _RUN_ID.fullmatch(run_id)
    return f"/runs/{m['repo']}/{m['issue']}" if m else None


def attempt_path(run_id: str, task_id: str, attempt: int) -> str | None:
    base = run_path(run_id)
    return f"{base}/tasks/{quote(task_id, safe='')}/attempts/{attempt}" if base else None


def absolute(public_url: str | None, path: str | None) -> str | None:
    """``public_url`` + ``path``, or None when either is missing (no public URL: no links)."""
    if not public_url or path is None:
        return None
    return public_url.rstrip("/") + path


def run_url(public_url: str | None, run_id: str) -> str | None:
    return absolute(public_url, run_path(run_id))


def attempt_url(public_url: str | None, run_id: str, task_id: str, attempt: int) -> str | None:
    return absolute(public_url, attempt_path(run_id, task_id, attempt))
