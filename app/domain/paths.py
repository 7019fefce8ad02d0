"""Confining a path the model names to a directory (the task's worktree).

Rules (``resolve_inside``):

- A relative path is relative to ``root``. ``""`` and ``"."`` name ``root`` itself.
- An absolute path is accepted only if it already lies inside ``root`` (compared after resolving
  ``root``'s own symlinks), or if it starts with ``alias`` (e.g. ``/repo``), a virtual mount point the
  model was told about, which is then replaced by ``root``. Any other absolute path is refused; a leading
  ``/`` is *not* silently treated as root-relative, so ``/etc/passwd`` is an error, not ``root/etc/passwd``.
- ``..`` is followed lexically but may never leave ``root``.
- Every existing component is checked: a symlink (including the last component) is followed only if its
  target lies inside ``root``; otherwise the path is refused.
- Nothing inside a ``.git`` directory or file (at any depth, any letter case) may be named.

The returned path is fully resolved (symlinks inside ``root`` replaced by their targets). The check is
made when called: a symlink created afterwards (e.g. by a command the agent runs next) is caught by
the next call, not by this one.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathEscape(ValueError):
    """A path names something outside the allowed directory (or inside ``.git``)."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_inside(root: Path, user_path: str, *, alias: str | None = None) -> Path:
    """The real path ``user_path`` names inside ``root``; raises :class:`PathEscape` otherwise."""
    if "\x00" in user_path:
        raise PathEscape("path contains a NUL byte")
    real_root = Path(os.path.realpath(root))
    raw = user_path.strip()
    pure = PurePosixPath(raw) if raw else PurePosixPath(".")
    if pure.is_absolute():
        alias_path = PurePosixPath(alias) if alias else None
        if alias_path is not None and (pure == alias_path or alias_path in pure.parents):
            parts = pure.relative_to(alias_path).parts
        else:
            for base in (real_root.parts, Path(os.path.abspath(root)).parts):
                if pure.parts[: len(base)] == base:
                    parts = pure.parts[len(base) :]
                    break
            else:
                where = f" (use paths relative to {alias} or to the repository root)" if alias else ""
                raise PathEscape(f"{user_path!r} is outside the repository{where}")
    else:
        parts = pure.parts

    current = real_root
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if current == real_root:
                raise PathEscape(f"{user_path!r} leads outside the repository")
            current = current.parent
            continue
        candidate = current / part
        if candidate.is_symlink():
            target = Path(os.path.realpath(candidate))
            if not _inside(target, real_root):
                raise PathEscape(f"{user_path!r} goes through a symlink that points outside the repository")
            current = target
        else:
            current = candidate
    if not _inside(current, real_root):  # defensive: cannot happen given the walk above
        raise PathEscape(f"{user_path!r} is outside the repository")
    rel_parts = current.relative_to(real_root).parts
    if any(p.lower() == ".git" for p in rel_parts):
        raise PathEscape(f"{user_path!r} is inside .git, which is off limits")
    return current


def display_path(root: Path, path: Path, *, alias: str | None = None) -> str:
    """How to show ``path`` (inside ``root``) to the model: relative, or under ``alias`` when given."""
    real_root = Path(os.path.realpath(root))
    try:
        rel = path.relative_to(real_root)
    except ValueError:
        rel = Path(os.path.relpath(path, real_root))
    text = rel.as_posix()
    if alias:
        return alias.rstrip("/") + ("" if text == "." else "/" + text)
    return text
