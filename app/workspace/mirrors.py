"""Bare mirrors: one per repository, ``<mirrors_dir>/<owner>/<repo>.git``, Otto's alone.

Created with ``git init`` (no remote configured, so no URL or credentials are stored) and updated by fetching
``+refs/heads/*:refs/remotes/origin/*`` with ``--prune`` from the URL given on each call. A file lock
(``fcntl.flock`` on ``<repo>.git.lock`` beside it) serialises fetches across threads and processes. Automatic
gc is off: checkouts write their objects into the mirror's object store (see :mod:`app.workspace.checkouts`),
and sandboxes read it through a read-only bind. No sandbox ever sees a mirror's config or refs.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.workspace.git import (
    NETWORK_TIMEOUT_S,
    Git,
    WorkspaceError,
    check_branch,
    check_url,
    git,
    remote_invocation,
)

REMOTE_REFS = "refs/remotes/origin/"
SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")
_LOCK_TIMEOUT_S = 900.0


@contextmanager
def locked(path: Path, timeout_s: float = _LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive lock on ``<path>.lock`` across threads and processes (one open file description each)."""
    lock_path = path.parent / f"{path.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceError(f"timed out waiting for the lock on {path.name}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def split_repo_key(repo_key: str) -> tuple[str, str]:
    parts = repo_key.split("/")
    if len(parts) != 2 or not all(SAFE_COMPONENT.match(p) and p not in (".", "..") for p in parts):
        raise WorkspaceError(f"invalid repository key {repo_key!r} (expected 'owner/repo')")
    return parts[0], parts[1]


class Mirrors:
    def __init__(self, mirrors_dir: Path) -> None:
        self.mirrors_dir = Path(os.path.abspath(mirrors_dir))

    def mirror_path(self, repo_key: str) -> Path:
        owner, repo = split_repo_key(repo_key)
        return self.mirrors_dir / owner / f"{repo}.git"

    def sync(self, repo_key: str, clone_url: str, token: str | None) -> Path:
        """Create the mirror if needed and fetch all branches into it (pruning deleted ones)."""
        check_url(clone_url)
        mirror = self.mirror_path(repo_key)
        g = Git(secrets=[token] if token else [])
        with locked(mirror):
            if not (mirror / "HEAD").is_file() or not (mirror / "objects").is_dir():
                _init_mirror(mirror)
            args, env = remote_invocation(token)
            g.run(
                [
                    "fetch",
                    "--prune",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--no-recurse-submodules",
                    "--quiet",
                    "--end-of-options",
                    clone_url,
                    f"+refs/heads/*:{REMOTE_REFS}*",
                ],
                git_dir=mirror,
                pre_args=args,
                env=env,
                timeout_s=NETWORK_TIMEOUT_S,
            )
        return mirror

    @staticmethod
    def list_files(mirror: Path, branch: str) -> list[str]:
        """Every file path in ``branch`` (as of the mirror's last fetch), in git's order."""
        check_branch(branch)
        sha = git.rev(mirror, REMOTE_REFS + branch)
        if sha is None:
            raise WorkspaceError(f"branch {branch!r} does not exist in the mirror")
        out = git.run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", sha], git_dir=mirror).stdout
        return [p for p in out.split("\0") if p]

    @staticmethod
    def branch_sha(mirror: Path, branch: str) -> str | None:
        """The sha of ``branch`` as of the mirror's last fetch (or Otto's last push), or None."""
        check_branch(branch)
        return git.rev(mirror, REMOTE_REFS + branch)

    @staticmethod
    def record_push(mirror: Path, branch: str, sha: str) -> None:
        with locked(mirror):
            git.run(["update-ref", REMOTE_REFS + branch, sha], git_dir=mirror, check=False)


def _init_mirror(mirror: Path) -> None:
    if mirror.exists():
        shutil.rmtree(mirror)  # a half-created mirror from a crash
    tmp = mirror.parent / f".{mirror.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    git.run(["-c", "init.defaultBranch=main", "init", "--bare", "--quiet", str(tmp)])
    for key, value in (("gc.auto", "0"), ("maintenance.auto", "false"), ("core.logAllRefUpdates", "false")):
        git.run(["config", key, value], git_dir=tmp)
    os.rename(tmp, mirror)
