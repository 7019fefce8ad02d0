"""What may cross from the sandbox into Otto's commit (pure).

The agent's work leaves the sandbox as data: the files of its workspace, staged by Otto's own git into
Otto's own index. Before anything is committed, each changed path is judged here; a refused change is
dropped from the commit (the path keeps its previous content) and reported in the PR and status comment:

- a symlink whose target is absolute, leaves the repository, or points into ``.git``;
- a gitlink (a nested repository or submodule pointer), which would make GitHub fetch code from elsewhere;
- a path matching the repository's ``paths_denied`` patterns (gitignore-style, e.g. ``.github/workflows/**``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

import pathspec

MODE_SYMLINK = "120000"
MODE_GITLINK = "160000"


@dataclass(frozen=True)
class StagedChange:
    path: str
    status: str  # A, M, D, T
    new_mode: str  # "000000" when deleted


@dataclass(frozen=True)
class Refusal:
    path: str
    reason: str

    def describe(self) -> str:
        shown = " ".join(self.path.replace("`", "ˋ").split())
        return f"`{shown}`: {self.reason}"


def symlink_escapes(link_path: str, target: str) -> str | None:
    """Why a symlink at ``link_path`` pointing to ``target`` may not be committed, or None."""
    if not target or "\x00" in target:
        return "a symlink with an empty or invalid target"
    shown = " ".join(target.replace("`", "ˋ").split())[:200]
    if target.startswith("/"):
        return f"a symlink to the absolute path `{shown}`"
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    if joined == ".." or joined.startswith("../"):
        return f"a symlink to `{shown}`, outside the repository"
    if any(part.lower() == ".git" for part in joined.split("/")):
        return f"a symlink into .git (`{shown}`)"
    return None


def denied_pattern(path: str, patterns: Sequence[str]) -> str | None:
    """The first ``paths_denied`` pattern (gitignore-style) that ``path`` matches, or None."""
    for pattern in patterns:
        if pattern.strip() and pathspec.PathSpec.from_lines("gitignore", [pattern]).match_file(path):
            return pattern
    return None


def judge(change: StagedChange, symlink_target: str | None, paths_denied: Sequence[str]) -> Refusal | None:
    """Whether ``change`` must be refused. ``symlink_target``: the link's target when it is a symlink."""
    pattern = denied_pattern(change.path, paths_denied)
    if pattern is not None:
        return Refusal(change.path, f"matches `paths_denied` pattern `{pattern}`; Otto may not change it")
    if change.new_mode == MODE_GITLINK:
        return Refusal(change.path, "a nested git repository or submodule (gitlink) is never committed")
    if change.new_mode == MODE_SYMLINK:
        why = symlink_escapes(change.path, symlink_target or "")
        if why is not None:
            return Refusal(change.path, why)
    return None
