"""Links to Mission Control's pages from ``OTTO_PUBLIC_URL`` and a run id
(``otto/<repo id>/<issue>[.<labeling>]``)."""

from __future__ import annotations

import re
from urllib.parse import quote

RUN_PREFIX = "otto"
RUN_REF = r"\d+(?:\.\d+)?"  # an issue's run in paths: ``7`` (its first labeling), ``7.2`` (its second), …
RUN_ID = re.compile(rf"{RUN_PREFIX}/(?P<repo>\d+)/(?P<ref>(?P<issue>\d+)(?:\.(?P<labeling>\d+))?)")


def labeling_of(run_id: str) -> int:
    """Which labeling of its issue a run is (1 for ``otto/1/7``, 2 for ``otto/1/7.2``)."""
    m = RUN_ID.fullmatch(run_id)
    return int(m["labeling"]) if m and m["labeling"] else 1


def run_path(run_id: str) -> str | None:
    m = RUN_ID.fullmatch(run_id)
    return f"/runs/{m['repo']}/{m['ref']}" if m else None


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
