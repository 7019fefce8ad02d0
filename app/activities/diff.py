"""The pull request's diff as an attempt pushed it: the ``diff.patch`` artifact Mission Control shows."""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.domain.redact import redact

DIFF_LIMIT = 2_000_000  # bytes kept; a larger diff is cut with a note
_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "diff.external="]
_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin"}


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *_SAFE, *args], cwd=root, env=_ENV, capture_output=True, timeout=120, check=False
    )


def pr_diff(root: Path, base_ref: str) -> str:
    """``git diff`` from the merge-base with ``base_ref`` (the remote's branch, else any commit-ish) to HEAD:
    what the pull request shows. No external diff drivers, no textconv. Empty when it can't be computed."""
    base = ""
    for rev in (f"refs/remotes/origin/{base_ref}", base_ref):
        proc = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        if proc.returncode == 0:
            base = proc.stdout.decode().strip()
            break
    if not base:
        return ""
    mb = _git(root, "merge-base", base, "HEAD").stdout.decode().strip()
    if not mb:
        return ""
    out = _git(
        root, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--find-renames", mb, "HEAD"
    ).stdout
    if len(out) > DIFF_LIMIT:
        out = out[:DIFF_LIMIT] + f"\n[… diff cut at {DIFF_LIMIT} bytes of {len(out)}]\n".encode()
    return out.decode("utf-8", errors="replace")


def write_pr_diff(root: Path, base_ref: str, dest: Path, secrets: list[str]) -> None:
    dest.write_text(redact(pr_diff(root, base_ref), secrets), encoding="utf-8")
