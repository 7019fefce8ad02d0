"""Outages: a service Otto needs answering 5xx, overloaded or not at all, or the worker's disk full — told
apart from real failures, said in words, and waited out with capped backoff until the run's deadline. Pure.

Activities raise an outage as ``ApplicationError(type="Outage", details=[usage, service, detail])``
(``app.outages``); the workflows wait on durable timers and call again (``app.workflows.calls.outlast``), and
the run shows a :class:`Waiting` in its status comment and in Mission Control while they do.
"""

from __future__ import annotations

import errno
import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class Service(StrEnum):
    GITHUB = "GitHub"
    MODEL = "the model API"
    DISK = "disk space on the worker"
    FILES = "file descriptors on the worker"


class Waiting(BaseModel):
    """What the run waits for now: shown in the status comment and Mission Control until it answers."""

    service: str
    detail: str  # "502", "529 overloaded_error", "unreachable", "no space left on device"
    since: datetime  # when the wait began (workflow time, UTC)
    step: str = ""  # what Otto was doing ("publishing task t1", "the agent of t1", "merging #4")
    tries: int = 1

    def headline(self) -> str:
        """``⏸️ waiting for GitHub: 502 since 10:02 UTC, retrying``."""
        return f"⏸️ waiting for {self.service}: {self.detail} since {self.since:%H:%M} UTC, retrying"

    def words(self) -> str:
        """The headline with what was interrupted and what happens next, for the status comment."""
        step = f" ({self.step})" if self.step else ""
        return (
            f"{self.headline()}{step}. Otto carries on where it was as soon as it answers; nothing needs "
            "doing on your side."
        )


# GitHub's and git's own words for "not now": 5xx answers, and the network failing under git.
_GIT_STATUS = re.compile(r"The requested URL returned error: (5\d\d)")
_GIT_UNREACHABLE = re.compile(
    r"Could not resolve host|Failed to connect|Connection refused|Connection timed out|Operation timed out|"
    r"Connection reset|RPC failed|early EOF|unexpected disconnect|remote end hung up|"
    r"SSL_read|gnutls_handshake|Empty reply from server",
    re.IGNORECASE,
)


def git_outage(stderr: str) -> str | None:
    """The outage behind a failed git network command (``"502"``, ``"unreachable"``), or None when git
    failed for another reason (a refused push, a missing branch, bad credentials)."""
    m = _GIT_STATUS.search(stderr)
    if m:
        return m.group(1)
    if _GIT_UNREACHABLE.search(stderr):
        return "unreachable"
    return None


_DISK_FULL = re.compile(r"No space left on device|Disk quota exceeded", re.IGNORECASE)


def disk_full(stderr: str) -> bool:
    """Whether a command failed because it could not write (git says it in its own words)."""
    return _DISK_FULL.search(stderr) is not None


_LOCAL = {
    errno.ENOSPC: (Service.DISK, "no space left on device"),
    errno.EDQUOT: (Service.DISK, "disk quota exceeded"),
    errno.EMFILE: (Service.FILES, "too many open files"),
    errno.ENFILE: (Service.FILES, "too many open files in the system"),
}


def local_outage(error: BaseException) -> tuple[Service, str] | None:
    """A transient local shortage behind ``error`` (or its causes): the disk full, no file descriptors."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _LOCAL:
            return _LOCAL[current.errno]
        current = current.__cause__ or current.__context__
    return None


def http_outage(status: int) -> bool:
    """An HTTP answer that says "not now" rather than "no": a 5xx, 408, or the model's 429/529."""
    return status >= 500 or status in (408, 429)


def backoff_s(tries: int, first_s: float, max_s: float) -> float:
    """The wait before try ``tries + 1``: ``first_s`` doubling, capped at ``max_s``."""
    return float(min(max_s, first_s * 2.0 ** max(0, tries - 1)))
