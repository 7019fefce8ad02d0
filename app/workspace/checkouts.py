"""Task checkouts: a warm pool of work trees per repository, a trust boundary between sandbox and Otto.

Layout of one pool slot, ``<checkouts_dir>/<owner>/<repo>/<n>/``:

- ``git/``  Otto's git dir for the slot: its own ``HEAD``, ``index`` and ``config``, and ``objects`` — a
  symlink to the mirror's object store, so commits Otto makes land in the mirror. Never visible to a sandbox.
- ``work/`` the work tree: the only directory a sandboxed command may write (bound at ``/workspace``).
  It holds a ``.git`` of the sandbox's own (created fresh for every attempt: ``HEAD``, a copy of Otto's
  index, the mirror's objects as a read-only alternate), so the agent's ``git status``/``diff``/``log``
  work; whatever it writes there is never read by Otto.
- ``home/``, ``tmp/`` the sandbox's ``$HOME`` and ``/tmp``, emptied for every attempt.

**Trust boundary.** Otto's git treats ``work/`` as data only: it is passed as ``--work-tree`` to commands that
run with Otto's git dir and Otto's config, and git never looks at the work tree's own ``.git``. The agent's
change crosses into a commit as files staged by Otto (:meth:`Workspace.commit_all`), where every changed path
is judged by :mod:`app.domain.boundary`: symlinks leaving the tree, gitlinks and ``paths_denied`` paths are
refused — dropped from the commit and put back as they were in the work tree — and reported.

**Warm pool.** A slot is locked (``flock`` on ``<n>.lock``) while an attempt uses it. The next attempt on the
same repository takes a free slot (one already at its start commit first) and resets it instead of checking
out every file again: one walk of the tree against the certificate Otto wrote when it last handed the slot
over finds everything anyone touched since — content, mode, owner, xattrs, renames, new entries of any type —
which is removed and written anew by Otto's git (``read-tree`` + ``checkout-index`` of exactly those paths and
of what differs between the two commits); see :mod:`app.workspace.handover`. Then a fresh sandbox ``.git``
and empty ``home``/``tmp``. A slot whose certificate is missing or can't be trusted (a crash mid-reset,
another boot, a clock that went back) is built anew. At most ``pool_size`` idle slots are kept per repository.
A crashed attempt's lock dies with its process; its slot is reset by the next user.

**Ownership.** When sandboxed commands run as another uid (Otto running as root), ``work/``, ``home/`` and
``tmp/`` belong to that uid; what Otto's git writes there is handed over after each such step (exactly the
paths a reset wrote; after a merge, a rebase or a put-back, whatever one walk finds not yet theirs).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel

from app.domain.boundary import MODE_SYMLINK, Refusal, StagedChange, judge
from app.workspace import handover
from app.workspace.git import (
    NETWORK_TIMEOUT_S,
    Git,
    GitResult,
    Identity,
    MergeConflict,
    PushRejected,
    WorkspaceError,
    check_branch,
    check_url,
    git,
    identity_env,
    remote_invocation,
)
from app.workspace.handover import ResetRefused, Target, Tree
from app.workspace.mirrors import REMOTE_REFS, Mirrors, split_repo_key
from app.workspace.mirrors import locked as mirrors_locked

SANDBOX_OBJECTS = "/otto/objects"  # where a sandbox sees the mirror's object store (read-only)
_MAX_SLOTS = 256
_TARGETS_KEPT = 8


@dataclass
class Worktree:
    path: Path  # the work tree (what a sandbox sees at /workspace)
    git_dir: Path  # Otto's git dir for it: never visible to sandboxed code
    home: Path
    tmp: Path
    mirror: Path
    name: str
    start_sha: str  # the commit the attempt started from (resume branch head or base head + merges)
    resumed: bool  # True when it started from the task's own existing branch
    merged: dict[str, str] = field(default_factory=dict)  # dependency branch → sha merged in
    refused: list[Refusal] = field(default_factory=list)  # changes the boundary refused so far
    lock_fd: int = -1
    slot: int = -1
    warm: bool = False  # True when an existing checkout was reset (False: checked out from scratch)
    setup_s: dict[str, float] = field(default_factory=dict)  # seconds per setup stage (logs, benchmarks)

    @property
    def objects(self) -> Path:
        return self.mirror / "objects"


class FileChange(BaseModel):
    path: str
    status: Literal["A", "M", "D", "R"]
    old_path: str | None = None  # for renames


class Workspace:
    def __init__(
        self,
        mirrors_dir: Path,
        checkouts_dir: Path,
        *,
        owner: tuple[int, int] | None = None,
        pool_size: int = 4,
        sandbox_objects: str | None = SANDBOX_OBJECTS,
    ) -> None:
        """``owner``: uid/gid sandboxed commands run as (None: Otto's own). ``sandbox_objects``: where the
        sandbox sees the mirror's objects (None: commands are not sandboxed and see host paths)."""
        self.mirrors = Mirrors(mirrors_dir)
        self.checkouts_dir = Path(os.path.abspath(checkouts_dir))
        self.owner = owner
        self.pool_size = pool_size
        self.sandbox_objects = sandbox_objects
        self._targets: dict[str, Target] = {}  # a commit's tree listing (immutable), for the next reset
        self._targets_lock = threading.Lock()

    # -- mirrors ------------------------------------------------------------------------------------------

    def sync_mirror(self, repo_key: str, clone_url: str, token: str | None) -> Path:
        return self.mirrors.sync(repo_key, clone_url, token)

    def list_files(self, mirror: Path, branch: str) -> list[str]:
        return self.mirrors.list_files(mirror, branch)

    def remote_branch_sha(self, mirror: Path, branch: str) -> str | None:
        return self.mirrors.branch_sha(mirror, branch)

    @staticmethod
    def commits_by_others(
        mirror: Path, base_branch: str, head: str, own_email: str, limit: int = 10
    ) -> list[str]:
        """Commits on ``head`` since ``base_branch`` that ``own_email`` did not author (a person's pushes),
        oldest first, one line each: short sha, author, subject and the files it touched."""
        proc = git.run(
            [
                "log",
                "--reverse",
                "--format=%H%x1f%h%x1f%an%x1f%ae%x1f%s",
                f"{REMOTE_REFS}{base_branch}..{head}",
                "--",
            ],
            git_dir=mirror,
            check=False,
        )
        lines: list[str] = []
        for row in proc.stdout.splitlines() if proc.returncode == 0 else []:
            sha, short, name, email, subject = (row.split("\x1f") + [""] * 5)[:5]
            if email.lower() == own_email.lower():
                continue
            files = git.run(
                ["diff-tree", "--no-commit-id", "--name-only", "-r", "--root", sha],
                git_dir=mirror,
                check=False,
            ).stdout.split()
            shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
            lines.append(f"{short} by {name}: {subject} (files: {shown or 'none'})")
        return lines[-limit:]

    @staticmethod
    def commit_message(mirror: Path, sha: str) -> str:
        """The full message of commit ``sha`` in the mirror ('' if it is not there)."""
        proc = git.run(["log", "-1", "--format=%B", sha, "--"], git_dir=mirror, check=False)
        return proc.stdout if proc.returncode == 0 else ""

    # -- checkouts ------------------------------------------------------------------------------------------

    def create_worktree(
        self,
        mirror: Path,
        name: str,
        base_branch: str,
        merge_branches: Sequence[str],
        resume_branch: str | None,
        author: Identity,
    ) -> Worktree:
        """A checkout from the pool, at ``resume_branch``'s head when that branch exists (a retry continues
        on the task's own branch), else at ``base_branch`` with each of ``merge_branches`` merged in order
        (fast-forward when possible, else a merge commit by ``author``). A conflict releases the checkout and
        raises :class:`MergeConflict` naming the branch. ``name`` labels the checkout in errors and logs."""
        for b in [base_branch, *merge_branches, *([resume_branch] if resume_branch else [])]:
            check_branch(b)
        start = self.mirrors.branch_sha(mirror, resume_branch) if resume_branch else None
        resumed = start is not None
        merges: list[tuple[str, str]] = []
        if start is None:
            start = self.mirrors.branch_sha(mirror, base_branch)
            if start is None:
                raise WorkspaceError(f"base branch {base_branch!r} does not exist in the mirror")
            for b in merge_branches:
                sha = self.mirrors.branch_sha(mirror, b)
                if sha is None:
                    raise WorkspaceError(f"branch {b!r} to merge does not exist in the mirror")
                merges.append((b, sha))
        begun = time.perf_counter()
        wt = self._acquire(mirror, name, start, resumed)
        wt.setup_s["acquire"] = time.perf_counter() - begun - wt.setup_s.get("chown", 0.0)
        try:
            if merges:
                with _stage(wt, "merge"):
                    for branch, sha in merges:
                        self._merge(wt, branch, sha, author)
                        wt.merged[branch] = sha
                    wt.start_sha = self.head_sha(wt)
                with _stage(wt, "chown"):
                    self._hand_over(wt.path)
            base_sha = None if resumed else start  # the base branch's head, as looked up above
            with _stage(wt, "sandbox .git"):
                self._sandbox_git(wt, base_branch, base_sha)
        except BaseException:
            self.remove_worktree(wt)
            raise
        return wt

    def _pool_dir(self, mirror: Path) -> Path:
        owner, repo = split_repo_key(f"{mirror.parent.name}/{mirror.name.removesuffix('.git')}")
        return self.checkouts_dir / owner / repo

    def prewarm(self, mirror: Path, branch: str, count: int) -> int:
        """Make up to ``count`` idle checkouts (at most the pool's size) exactly ``branch``'s head now, ahead
        of the tasks that will start from it, so that none of them waits for a first checkout. Busy slots
        are skipped; returns how many are ready."""
        check_branch(branch)
        sha = self.mirrors.branch_sha(mirror, branch)
        if sha is None:
            raise WorkspaceError(f"branch {branch!r} does not exist in the mirror")
        held: list[Worktree] = []
        try:
            for _ in range(min(count, self.pool_size)):
                wt = self._acquire(mirror, f"prewarm-{branch}", sha, False, within_pool=True)
                if wt is None:
                    break
                held.append(wt)
        finally:
            for wt in held:
                self.remove_worktree(wt)
        return len(held)

    @overload
    def _acquire(self, mirror: Path, name: str, start: str, resumed: bool) -> Worktree: ...

    @overload
    def _acquire(
        self, mirror: Path, name: str, start: str, resumed: bool, *, within_pool: bool
    ) -> Worktree | None: ...

    def _acquire(
        self, mirror: Path, name: str, start: str, resumed: bool, *, within_pool: bool = False
    ) -> Worktree | None:
        """A locked slot, reset to (or checked out at) ``start``. ``within_pool``: only slots the pool keeps
        (None when all of those are busy)."""
        pool = self._pool_dir(mirror)
        pool.mkdir(parents=True, exist_ok=True)
        for d in (self.checkouts_dir, pool.parent, pool):
            os.chmod(d, 0o711)  # noqa: S103 - the sandbox's uid passes through (bwrap binds by path)
        for n in _slot_order(pool, start):
            if within_pool and n >= self.pool_size:
                continue
            fd = os.open(pool / f"{n}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            slot = pool / str(n)
            wt = Worktree(
                path=slot / "work",
                git_dir=slot / "git",
                home=slot / "home",
                tmp=slot / "tmp",
                mirror=mirror,
                name=name,
                start_sha=start,
                resumed=resumed,
                lock_fd=fd,
                slot=n,
            )
            try:
                wt.warm = self._reset(wt, start)
                if not wt.warm:
                    self._fresh(wt, start)
                for d in (wt.home, wt.tmp):
                    _rmtree(d)
                    d.mkdir()
                    self._chown(d)
            except BaseException:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                raise
            return wt
        if within_pool:
            return None
        raise WorkspaceError(f"no free checkout slot for {mirror.name} (all {_MAX_SLOTS} in use)")

    def _reset(self, wt: Worktree, start: str) -> bool:
        """Bring a used slot to exactly ``start`` (see :mod:`app.workspace.handover`); False when it can't be
        trusted to be (then it is built anew)."""
        if not (wt.git_dir / "HEAD").is_file() or not wt.path.is_dir():
            return False
        cert = handover.read_certificate(wt.git_dir)
        handover.discard_certificate(wt.git_dir)  # consumed: a crash from here on leaves a slot to rebuild
        if cert is None:
            return False
        try:
            _rmtree(wt.path / ".git")
            reference = handover.reference(wt.git_dir, cert)
            with _stage(wt, "walk"):
                found = handover.scan(wt.path, cert, reference, self._owner_ids(), self._dir_mode)
            target = self._target(wt, start)
            changed = set() if cert.sha == start else _changed(wt, cert.sha, start)
            plan = handover.plan_reset(found, cert, target, changed)
            with Tree(wt.path) as tree:
                for rel in plan.remove_trees:
                    tree.remove_tree(rel)
                for rel in plan.unlink:
                    tree.unlink(rel)
                for rel in plan.restore_dirs:
                    tree.restore_dir(rel, self.owner, self._dir_mode)
            _clear_operation_state(wt.git_dir)
            # Otto's index at ``start`` (stat data kept where the blob is the same), then the plan's paths
            _in(wt, ["read-tree", "--reset", start])
            if plan.write:
                listing = "\0".join(plan.write) + "\0"
                _in(wt, ["checkout-index", "--force", "-z", "--stdin"], input_text=listing)
            _write_head(wt.git_dir, start)
            with _stage(wt, "chown"), Tree(wt.path) as tree:
                written = handover.settle(tree, plan.write, self.owner, set(plan.dirs))
            handover.write_certificate(wt.git_dir, start, plan.kept | written)
        except (WorkspaceError, ResetRefused, OSError):
            return False
        return True

    def _fresh(self, wt: Worktree, start: str) -> None:
        slot = wt.git_dir.parent
        _rmtree(slot)
        slot.mkdir(mode=0o711)
        g = wt.git_dir
        (g / "refs" / "heads").mkdir(parents=True)
        (g / "refs" / "tags").mkdir()
        (g / "info").mkdir()
        os.symlink(wt.objects, g / "objects")
        (g / "HEAD").write_text(start + "\n")
        (g / "config").write_text(
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
            "\tlogallrefupdates = false\n\tsymlinks = true\n[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n"
        )
        wt.path.mkdir()
        git.run(["checkout", "--force", "--quiet", "--detach", start], git_dir=g, work_tree=wt.path)
        with _stage(wt, "chown"):
            inodes = self._hand_over(wt.path)
        # Otto's index records the files as handed over (else the first `git add` hashes every file again)
        _in(wt, ["update-index", "-q", "--refresh"], check=False)
        handover.write_certificate(g, start, inodes)

    def _target(self, wt: Worktree, sha: str) -> Target:
        """What ``sha`` holds (``ls-tree``, once per commit: the tasks of a plan mostly start from one)."""
        with self._targets_lock:
            cached = self._targets.get(sha)
        if cached is not None:
            return cached
        target = _target(wt, sha)
        with self._targets_lock:
            self._targets[sha] = target
            while len(self._targets) > _TARGETS_KEPT:
                del self._targets[next(iter(self._targets))]
        return target

    @property
    def _dir_mode(self) -> int:
        return 0o777 & ~handover.umask()

    def _owner_ids(self) -> tuple[int, int]:
        return self.owner or (os.geteuid(), os.getegid())

    def _sandbox_git(self, wt: Worktree, base_branch: str, base_sha: str | None = None) -> None:
        """The sandbox's own ``.git`` in the work tree: fresh, made by Otto before any sandboxed command."""
        d = wt.path / ".git"
        _rmtree(d)
        for sub in ("refs/heads", "refs/tags", "objects/info", "objects/pack", "info"):
            (d / sub).mkdir(parents=True)
        head = wt.start_sha  # Otto's HEAD: nothing was committed yet
        (d / "HEAD").write_text(head + "\n")
        (d / "config").write_text(
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
            "\tcheckStat = minimal\n\tlogallrefupdates = true\n[gc]\n\tauto = 0\n"
        )
        objects = self.sandbox_objects or str(wt.objects)
        (d / "objects" / "info" / "alternates").write_text(objects + "\n")
        base_sha = base_sha or self.mirrors.branch_sha(wt.mirror, base_branch)
        refs = "# pack-refs with: peeled fully-peeled sorted\n"
        if base_sha:
            refs += f"{base_sha} {REMOTE_REFS}{base_branch}\n"
        (d / "packed-refs").write_text(refs)
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(wt.git_dir / "index", d / "index")
        self._chown(d)

    def _merge(self, wt: Worktree, branch: str, sha: str, author: Identity) -> None:
        files = _merge_or_conflicts(wt, branch, sha, author)
        if files:
            _in(wt, ["merge", "--abort"], check=False)
            raise MergeConflict(branch, files)

    def remove_worktree(self, wt: Worktree) -> None:
        """Give the checkout back to the pool (or remove it beyond the pool's size). Idempotent."""
        if wt.lock_fd < 0:
            return
        try:
            for d in (wt.home, wt.tmp):
                _rmtree(d)
            if wt.slot >= self.pool_size:
                _rmtree(wt.git_dir.parent)
        finally:
            fcntl.flock(wt.lock_fd, fcntl.LOCK_UN)
            os.close(wt.lock_fd)
            wt.lock_fd = -1

    # -- ownership ---------------------------------------------------------------------------------------

    def _chown(self, path: Path) -> None:
        if self.owner is not None:
            _chown_tree(path, *self.owner)

    def _hand_over(self, path: Path) -> dict[str, int]:
        """After Otto's git wrote into the work tree: the sandbox's uid owns everything in it (one walk, then
        only what isn't theirs yet is changed). Returns the inode of every file and symlink."""
        entries = handover.walk(path)
        if self.owner is not None:
            with Tree(path) as tree:
                for e in sorted(entries, key=lambda e: e.path.split("/")):
                    if (e.uid, e.gid) != self.owner:
                        tree.chown(e.path, *self.owner)
        return {e.path: e.ino for e in entries if e.kind != "d"}

    # -- commits --------------------------------------------------------------------------------------------

    def head_sha(self, wt: Worktree) -> str:
        sha = git.rev(wt.git_dir, "HEAD")
        if sha is None:
            raise WorkspaceError(f"checkout {wt.name!r} has no HEAD commit")
        return sha

    def commit_all(
        self, wt: Worktree, message: str, author: Identity, paths_denied: Sequence[str] = ()
    ) -> str | None:
        """Stage the work tree's files (``.gitignore`` respected) into Otto's index, refuse what may not cross
        the boundary (see the module docstring; refusals are appended to ``wt.refused`` and put back in the
        work tree), and commit the rest as ``author``. Returns the new sha, or None when nothing is left."""
        _in(wt, ["add", "--all"])
        raw = _in(wt, ["diff", "--cached", "--raw", "-z", "--no-renames", "--abbrev=40", "HEAD"]).stdout
        refused: list[Refusal] = []
        for change, new_sha in _parse_raw(raw):
            target = None
            if change.new_mode == MODE_SYMLINK:
                target = git.run(["cat-file", "blob", new_sha], git_dir=wt.git_dir).stdout
            verdict = judge(change, target, paths_denied)
            if verdict is not None:
                refused.append(verdict)
        if refused:
            self._put_back(wt, [r.path for r in refused])
            wt.refused.extend(r for r in refused if r not in wt.refused)
        if _in(wt, ["diff", "--cached", "--quiet"], check=False).returncode == 0:
            return None
        _in(wt, ["commit", "--quiet", "--no-verify", "-m", message], env=identity_env(author))
        return self.head_sha(wt)

    def _put_back(self, wt: Worktree, paths: list[str]) -> None:
        """Unstage refused paths and restore them in the work tree as they are at HEAD (absent if new)."""
        listing = "\0".join(paths) + "\0"
        _in(
            wt,
            ["reset", "--quiet", "--pathspec-from-file=-", "--pathspec-file-nul", "HEAD"],
            input_text=listing,
        )
        at_head = set(
            git.run(
                ["ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *paths], git_dir=wt.git_dir
            ).stdout.split("\0")
        )
        for p in paths:
            target = _inside_without_links(wt.path, p)
            if target is None:
                continue  # a leading directory is a symlink: leave it to git, which never follows it
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                _rmtree(target)
        restore = [p for p in paths if p in at_head]
        if restore:
            _in(
                wt,
                ["checkout", "HEAD", "--pathspec-from-file=-", "--pathspec-file-nul"],
                input_text="\0".join(restore) + "\0",
            )
            self._hand_over(wt.path)

    def move_ignored(self, src: Worktree, dst: Worktree, names: Sequence[str]) -> list[str]:
        """Move the top-level entries ``names`` of ``src`` that ``src``'s ignore rules ignore into ``dst``
        (where nothing of that name exists); returns what moved. How what the setup step made on the base
        branch's files (``node_modules``, ``.venv``) reaches the task's checkout, and, ignored, no commit."""
        wanted = [n for n in names if n and "/" not in n and n not in (".", "..", ".git")]
        if not wanted:
            return []
        listed = _in(src, ["check-ignore", "--", *wanted], check=False).stdout.splitlines()
        moved: list[str] = []
        for name in listed:
            source, target = src.path / name, dst.path / name
            if name not in wanted or target.exists() or target.is_symlink():
                continue
            if source.exists() or source.is_symlink():
                os.rename(source, target)
                moved.append(name)
        return moved

    def changed_files(self, wt: Worktree, base_ref: str) -> list[FileChange]:
        """Files changed by the checkout's commits since their merge-base with ``base_ref`` (a branch of the
        remote as of the mirror's last fetch, or a commit sha). Renames are detected (status ``R``)."""
        base = self._resolve(wt, base_ref)
        mb = git.run(["merge-base", base, "HEAD"], git_dir=wt.git_dir, check=False).stdout.strip()
        if not mb:
            raise WorkspaceError(f"HEAD has no common history with {base_ref!r}")
        out = git.run(
            ["diff", "--name-status", "-z", "--find-renames", mb, "HEAD"], git_dir=wt.git_dir
        ).stdout
        return _parse_name_status(out)

    def pr_diff(self, wt: Worktree, base_ref: str, limit: int = 2_000_000) -> str:
        """What the pull request shows: ``git diff`` from the merge-base with ``base_ref`` to HEAD, computed
        in Otto's git dir (no external diff drivers, no textconv); cut at ``limit`` characters."""
        base = self._resolve(wt, base_ref)
        mb = git.run(["merge-base", base, "HEAD"], git_dir=wt.git_dir, check=False).stdout.strip()
        if not mb:
            return ""
        out = git.run(
            ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--find-renames", mb, "HEAD"],
            git_dir=wt.git_dir,
        ).stdout
        if len(out) > limit:
            out = out[:limit] + f"\n[… diff cut at {limit} characters of {len(out)}]\n"
        return out

    def _resolve(self, wt: Worktree, ref: str) -> str:
        sha = git.rev(wt.mirror, REMOTE_REFS + ref) if _looks_like_branch(ref) else None
        sha = sha or git.rev(wt.git_dir, ref)
        if sha is None:
            raise WorkspaceError(f"unknown base {ref!r}")
        return sha

    # -- rebase and push ------------------------------------------------------------------------------------

    def rebase_onto(self, wt: Worktree, onto_branch: str, upstream_sha: str, author: Identity) -> str:
        """``git rebase --onto <onto_branch's head> <upstream_sha>``: replay the commits after
        ``upstream_sha`` onto the branch. Returns the new HEAD; a conflict aborts and raises MergeConflict."""
        check_branch(onto_branch)
        onto = self.mirrors.branch_sha(wt.mirror, onto_branch)
        if onto is None:
            raise WorkspaceError(f"branch {onto_branch!r} does not exist in the mirror")
        proc = _in(
            wt,
            ["rebase", "--no-autosquash", "--onto", onto, upstream_sha],
            env=identity_env(author),
            check=False,
        )
        if proc.returncode != 0:
            _in(wt, ["rebase", "--abort"], check=False)
            raise MergeConflict(onto_branch, [])
        self._hand_over(wt.path)
        return self.head_sha(wt)

    def merge_in(self, wt: Worktree, branch: str, author: Identity) -> list[str]:
        """Merge ``branch``'s head into the checkout (what GitHub's "Update branch" does): a clean merge is
        committed as ``author``; a conflicted one is left in progress, its files holding the conflict markers
        for the agent (the next :meth:`commit_all` concludes the merge). Returns the conflicted paths."""
        check_branch(branch)
        sha = self.mirrors.branch_sha(wt.mirror, branch)
        if sha is None:
            raise WorkspaceError(f"branch {branch!r} does not exist in the mirror")
        files = _merge_or_conflicts(wt, branch, sha, author)
        self._hand_over(wt.path)
        return files

    def revert(self, wt: Worktree, sha: str, merge_commit: bool, author: Identity) -> str:
        """Commit the revert of ``sha`` (a merge commit: against its first parent) on HEAD; returns HEAD."""
        args = ["revert", "--no-edit", *(["-m", "1"] if merge_commit else []), sha]
        proc = _in(wt, args, env=identity_env(author), check=False)
        if proc.returncode != 0:
            _in(wt, ["revert", "--abort"], check=False)
            raise WorkspaceError(f"reverting {sha[:7]} failed: " + git.describe(["revert"], proc))
        self._hand_over(wt.path)
        return self.head_sha(wt)

    def bundle(self, wt: Worktree, bundle: Path) -> str:
        """Write the commits of HEAD since the checkout began (``start_sha``) to ``bundle`` (a git bundle):
        work a push could not deliver, kept so that another try (on any worker) pushes it without redoing
        it. Returns HEAD's sha."""
        sha = self.head_sha(wt)
        git.run(["bundle", "create", "--quiet", str(bundle), "HEAD", f"^{wt.start_sha}"], git_dir=wt.git_dir)
        return sha

    def restore(
        self, mirror: Path, name: str, bundle: Path, sha: str, base_branch: str, start_sha: str
    ) -> Worktree:
        """A checkout at ``sha``, read from a git :meth:`bundle` into the mirror; its ``start_sha`` (what the
        commits after it are) as when the bundle was made."""
        with mirrors_locked(mirror):
            git.run(
                ["fetch", "--quiet", "--no-write-fetch-head", str(bundle), f"HEAD:refs/otto/restored/{sha}"],
                git_dir=mirror,
            )
        wt = self._acquire(mirror, name, sha, True)
        try:
            wt.start_sha = start_sha
            self._sandbox_git(wt, base_branch, None)
        except BaseException:
            self.remove_worktree(wt)
            raise
        return wt

    def push(
        self, wt: Worktree, clone_url: str, token: str | None, branch: str, expected_remote_sha: str | None
    ) -> str:
        """Push HEAD to ``refs/heads/<branch>``; returns the pushed sha.

        With ``expected_remote_sha``: ``--force-with-lease=refs/heads/<branch>:<expected>`` (succeeds only if
        the remote branch is still exactly there). Without: a plain push (creates or fast-forwards).
        Anything the remote refuses raises :class:`PushRejected`; other commits on the remote are never
        overwritten. On success the mirror records the pushed sha for the branch."""
        check_url(clone_url)
        check_branch(branch)
        sha = self.head_sha(wt)
        g = Git(secrets=[token] if token else [])
        ref = f"refs/heads/{branch}"
        args, env = remote_invocation(token)
        push_args = ["push", "--porcelain", "--no-verify", "--no-follow-tags"]
        if expected_remote_sha:
            push_args.append(f"--force-with-lease={ref}:{expected_remote_sha}")
        push_args += ["--end-of-options", clone_url, f"{sha}:{ref}"]
        proc = g.run(
            push_args, git_dir=wt.git_dir, pre_args=args, env=env, timeout_s=NETWORK_TIMEOUT_S, check=False
        )
        if proc.returncode != 0:
            rejected = [line for line in proc.stdout.splitlines() if line.startswith("!")]
            message = g.describe(["push"], proc)
            if rejected:
                reason = g.clean(rejected[0].split("\t")[-1])
                raise PushRejected(f"push to {branch!r} rejected: {reason}. {message}")
            raise g.failure(["push"], proc)
        self.mirrors.record_push(wt.mirror, branch, sha)
        return sha


@contextlib.contextmanager
def _stage(wt: Worktree, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        wt.setup_s[name] = wt.setup_s.get(name, 0.0) + time.perf_counter() - started


def _inside_without_links(root: Path, rel: str) -> Path | None:
    """``root/rel`` if no directory on the way is a symlink (so using it can't leave ``root``), else None."""
    parts = Path(rel).parts
    if not parts or any(part in ("..", "") for part in parts) or Path(rel).is_absolute():
        return None
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            return None
    return current / parts[-1]


_OPERATION_STATE = (
    "MERGE_HEAD",
    "MERGE_MSG",
    "MERGE_MODE",
    "MERGE_RR",
    "AUTO_MERGE",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "ORIG_HEAD",
    "rebase-merge",
    "rebase-apply",
    "sequencer",
)


def _clear_operation_state(git_dir: Path) -> None:
    """What a merge or rebase cut short by a crash leaves in Otto's git dir (``checkout`` clears it)."""
    for name in _OPERATION_STATE:
        _rmtree(git_dir / name)


def _write_head(git_dir: Path, sha: str) -> None:
    tmp = git_dir / "HEAD.otto-tmp"
    tmp.write_text(sha + "\n")
    os.replace(tmp, git_dir / "HEAD")


def _target(wt: Worktree, sha: str) -> Target:
    out = git.run(["ls-tree", "-r", "-t", "-z", "--full-tree", sha], git_dir=wt.git_dir).stdout
    files: dict[str, str] = {}
    dirs: set[str] = set()
    gitlinks: set[str] = set()
    for record in out.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, _sha = meta.split(" ")
        if kind == "tree":
            dirs.add(path)
        elif kind == "commit":
            gitlinks.add(path)
        else:
            files[path] = mode
    return Target(files=files, dirs=dirs | gitlinks, gitlinks=gitlinks)


def _changed(wt: Worktree, old: str, new: str) -> set[str]:
    """Paths whose entry differs between two commits (added, deleted, modified, type or mode changed)."""
    out = git.run(
        ["diff-tree", "-r", "-z", "--no-renames", "--name-only", "--no-commit-id", old, new],
        git_dir=wt.git_dir,
    ).stdout
    return {p for p in out.split("\0") if p}


def _slot_order(pool: Path, start: str) -> list[int]:
    """Slot numbers to try: the idle ones already at ``start`` first (least to rewrite), then the rest."""
    try:
        existing = sorted(int(n) for n in os.listdir(pool) if n.isdigit() and int(n) < _MAX_SLOTS)
    except OSError:
        existing = []
    at_start = [n for n in existing if handover.certified_sha(pool / str(n) / "git") == start]
    return at_start + [n for n in range(_MAX_SLOTS) if n not in at_start]


def _merge_or_conflicts(wt: Worktree, branch: str, sha: str, author: Identity) -> list[str]:
    """``git merge`` of ``sha`` (named ``branch``) into the checkout: [] when it merged, else the conflicted
    paths with the merge left in progress; any other failure is aborted and raised."""
    proc = _in(
        wt,
        ["merge", "--no-edit", "--no-verify", "-m", f"Merge branch '{branch}'", sha],
        env=identity_env(author),
        check=False,
    )
    if proc.returncode == 0:
        return []
    conflicted = _in(wt, ["diff", "--name-only", "--diff-filter=U", "-z"], check=False)
    files = [f for f in conflicted.stdout.split("\0") if f]
    if not files:
        _in(wt, ["merge", "--abort"], check=False)
        raise WorkspaceError(f"merging branch {branch!r} failed: " + git.describe(["merge"], proc))
    return files


def _in(wt: Worktree, args: Sequence[str], **kwargs: Any) -> GitResult:
    """Otto's git with the checkout's own git dir and its work tree as data."""
    return git.run(args, git_dir=wt.git_dir, work_tree=wt.path, **kwargs)


def _looks_like_branch(ref: str) -> bool:
    return not (len(ref) == 40 and all(c in "0123456789abcdef" for c in ref))


def _parse_raw(out: str) -> list[tuple[StagedChange, str]]:
    """``git diff --raw -z``: ``:<old mode> <new mode> <old sha> <new sha> <status>\\0<path>\\0`` entries."""
    fields = out.split("\0")
    changes: list[tuple[StagedChange, str]] = []
    i = 0
    while i + 1 < len(fields) and fields[i].startswith(":"):
        meta = fields[i][1:].split()
        path = fields[i + 1]
        i += 2
        if len(meta) < 5:
            continue
        _old_mode, new_mode, _old_sha, new_sha, status = meta[:5]
        changes.append((StagedChange(path=path, status=status[0], new_mode=new_mode), new_sha))
    return changes


def _parse_name_status(out: str) -> list[FileChange]:
    fields = out.split("\0")
    changes: list[FileChange] = []
    i = 0
    while i < len(fields) and fields[i]:
        kind = fields[i][0]
        if kind in ("R", "C"):
            old, new = fields[i + 1], fields[i + 2]
            i += 3
            if kind == "R":
                changes.append(FileChange(path=new, status="R", old_path=old))
            else:
                changes.append(FileChange(path=new, status="A"))
            continue
        path = fields[i + 1]
        i += 2
        if kind in ("A", "D"):
            changes.append(FileChange(path=path, status=kind))
        else:  # M, T (type change), U
            changes.append(FileChange(path=path, status="M"))
    return changes


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """lchown everything under ``root`` (never following symlinks) that isn't already ``uid``:``gid``."""

    def fix(path: str, st: os.stat_result) -> None:
        if st.st_uid != uid or st.st_gid != gid:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(path, uid, gid)

    with contextlib.suppress(FileNotFoundError):
        fix(str(root), os.lstat(root))
    stack = [str(root)]
    while stack:
        top = stack.pop()
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            fix(entry.path, st)
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)


def _rmtree(path: Path) -> None:
    """Remove ``path`` whatever it is (a symlink is removed, never followed; read-only dirs made writable)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return

    def onerror(func: object, p: str, exc: object) -> None:
        try:
            os.chmod(os.path.dirname(p), 0o700)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
        except OSError:
            return
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(p)

    shutil.rmtree(path, onerror=onerror)
