"""Host-side git for the eval (never inside a sandbox): a repository's history up to ``base_commit`` only,
the files a patch leaves behind, the combined change of Otto's branches. Plain git through subprocess,
argument lists only; every input here is the eval operator's (instances and their repositories)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "otto-eval",
    "GIT_AUTHOR_EMAIL": "otto-eval@localhost",
    "GIT_COMMITTER_NAME": "otto-eval",
    "GIT_COMMITTER_EMAIL": "otto-eval@localhost",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


class GitError(RuntimeError):
    pass


def git(args: Sequence[str], cwd: Path, *, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args],
        cwd=cwd,
        env=_ENV,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:3])} failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


def push_history(source: Path, base_commit: str, bare: Path, branch: str = "main") -> None:
    """``bare`` gets ``base_commit`` and its ancestors as ``branch`` — no other branch, tag or later commit
    (an agent that can run git must not find the fix in history)."""
    if not (source / ".git").exists() and not (source / "HEAD").exists():
        raise GitError(f"{source} is not a git repository")
    git(["cat-file", "-e", f"{base_commit}^{{commit}}"], source)
    git(["push", "--quiet", "--no-tags", str(bare), f"{base_commit}:refs/heads/{branch}"], source)


Change = tuple[str | None, str | None]  # a file before and after (None: absent)


def changed_files(source: Path, base_commit: str, patch: str) -> dict[str, Change]:
    """The files ``patch`` changes: their text at ``base_commit`` and after the patch (None: absent)."""
    with tempfile.TemporaryDirectory(prefix="otto-eval-") as tmp:
        work = Path(tmp) / "w"
        git(["clone", "--quiet", "--no-checkout", "--shared", str(source), str(work)], Path(tmp))
        git(["checkout", "--quiet", "--detach", base_commit], work)
        git(["apply", "--whitespace=nowarn", "-"], work, stdin=patch)
        git(["add", "--all"], work)
        out: dict[str, Change] = {}
        for line in git(["diff", "--cached", "--name-status", "--no-renames"], work).splitlines():
            status, _, path = line.partition("\t")
            before = None if status.startswith("A") else git(["show", f"HEAD:{path}"], work)
            after = None if status.startswith("D") else (work / path).read_text(encoding="utf-8")
            out[path] = (before, after)
        return out


def combined_change(bare: Path, base: str, heads: Sequence[str], exclude: Sequence[str] = ()) -> str | None:
    """The change of ``heads`` (Otto's task branches, in dependency order) merged onto ``base``, as one diff
    (``exclude``: paths left out, e.g. the eval's own settings file). None when they don't merge."""
    with tempfile.TemporaryDirectory(prefix="otto-eval-") as tmp:
        work = Path(tmp) / "w"
        git(["clone", "--quiet", "--shared", str(bare), str(work)], Path(tmp))
        git(["checkout", "--quiet", "--detach", base], work)
        for head in heads:
            merged = subprocess.run(
                ["git", "-c", "core.hooksPath=/dev/null", "merge", "--quiet", "--no-edit", head],
                cwd=work,
                env=_ENV,
                capture_output=True,
                text=True,
            )
            if merged.returncode != 0:
                return None
        spec = ["--", ".", *(f":(exclude){p}" for p in exclude)]
        return git(["diff", "--binary", base, "HEAD", *spec], work)


def commit_on(bare: Path, base: str, patches: Sequence[str], branch: str, message: str) -> bool:
    """A commit on ``base`` with ``patches`` applied in order, pushed to ``bare`` as ``branch``; False when a
    patch does not apply (nothing pushed)."""
    with tempfile.TemporaryDirectory(prefix="otto-eval-") as tmp:
        work = Path(tmp) / "w"
        git(["clone", "--quiet", "--shared", str(bare), str(work)], Path(tmp))
        git(["checkout", "--quiet", "--detach", base], work)
        for patch in patches:
            if not patch.strip():
                continue
            applied = subprocess.run(
                ["git", "apply", "--whitespace=nowarn", "-"],
                cwd=work,
                env=_ENV,
                input=patch,
                capture_output=True,
                text=True,
            )
            if applied.returncode != 0:
                return False
        git(["add", "--all"], work)
        git(["commit", "--quiet", "--allow-empty", "-m", message], work)
        git(["push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}"], work)
        return True
