"""Git workspaces: a bare mirror per repository, a detached worktree per task attempt, bot commits, pushes.

Design (what a caller must know):

- **Mirror**: ``<mirrors_dir>/<owner>/<repo>.git``, a bare repository created with ``git init`` (no remote
  configured, so no URL and no credentials are ever stored) and updated by fetching
  ``+refs/heads/*:refs/remotes/origin/*`` with ``--prune`` from the URL given on each call. The remote's
  branches live under ``refs/remotes/origin/`` rather than ``refs/heads/`` because ``refs/heads`` is
  shared with every worktree: a branch the agent creates or checks out there (``git checkout -b x``,
  ``git checkout main``) would otherwise be deleted by ``--prune`` under the worktree's feet, or make
  every later fetch fail with "refusing to fetch into branch checked out". In a worktree the remote's
  branches are therefore visible as ``origin/<branch>``. A file lock
  (``fcntl.flock`` on ``<repo>.git.lock`` beside it) serialises fetches and worktree bookkeeping across
  threads and processes. Automatic gc is disabled in the mirror (objects of live worktrees are shared).
- **Worktrees** are *detached* at a commit: ``<worktrees_dir>/<name>``, ``name`` a single path component of
  ``[A-Za-z0-9._-]``. Otto never creates local branches; task branch names only exist on the remote:
  :meth:`Workspace.push` pushes ``HEAD`` to ``refs/heads/<branch>`` and records the pushed sha in the
  mirror's ``refs/remotes/origin/<branch>``. Local branches the agent may create are deleted when no
  worktree has them checked out any more (on sync and on worktree removal).
- **Auth**: the token travels per command in git's environment as
  ``GIT_CONFIG_COUNT/KEY/VALUE`` = ``http.extraheader: AUTHORIZATION: basic base64(x-access-token:TOKEN)``
  (same effect as ``git -c http.extraheader=...``, but not visible in the process list), with
  ``-c credential.helper=`` and ``GIT_TERMINAL_PROMPT=0``. Never in a config file, never in a URL
  (URLs with credentials are refused). Errors are redacted.
- **Untrusted repository**: every git command runs with ``core.hooksPath=/dev/null`` and
  ``core.fsmonitor=false``, no system or global config (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=
  /dev/null``), and without Otto's ``GIT_*`` environment. A consequence: no host LFS filters, so LFS
  files are checked out as pointer files.
- The worktree's companion directory ``<worktrees_dir>/<name>.sandbox`` (HOME/TMPDIR for the agent's and
  the checks' commands, see ``proc.sandbox_dirs``) is removed together with the worktree.

Everything is synchronous and blocking; call it from a thread.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from app.domain.redact import redact

# Where the mirror keeps the remote's branches (see the module docstring).
REMOTE_REFS = "refs/remotes/origin/"
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")
_LOCK_TIMEOUT_S = 900.0
_LOCAL_TIMEOUT_S = 300.0
_NETWORK_TIMEOUT_S = 600.0
# Applied to every git command: the repository is untrusted, the host's config is not ours.
_SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "advice.detachedHead=false",
)


class WorkspaceError(RuntimeError):
    """A git operation failed; the message is redacted and safe to log or post."""


class PushRejected(WorkspaceError):
    """The remote refused the push (lease broken, not a fast-forward, protected branch...)."""


class MergeConflict(WorkspaceError):
    def __init__(self, branch: str, files: list[str]) -> None:
        listed = ", ".join(files[:20]) + (" ..." if len(files) > 20 else "")
        super().__init__(f"merge conflict merging branch {branch!r}" + (f" in: {listed}" if files else ""))
        self.branch = branch
        self.files = files


class Identity(Protocol):
    """Anything with ``name`` and ``email`` (e.g. ``app.github_auth.GitIdentity`` or :class:`GitIdentity`)."""

    @property
    def name(self) -> str: ...

    @property
    def email(self) -> str: ...


class GitIdentity(BaseModel):
    """Author and committer of Otto's commits, e.g. ``otto[bot]`` /
    ``123+otto[bot]@users.noreply.github.com``."""

    model_config = ConfigDict(frozen=True)
    name: str
    email: str

    @field_validator("name", "email")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if not _valid_identity_part(v):
            raise ValueError("must be a non-empty single line without '<' or '>'")
        return v


def _valid_identity_part(v: str) -> bool:
    return bool(v.strip()) and not any(c in v for c in "\n\r\x00<>")


@dataclass(frozen=True)
class Worktree:
    path: Path
    mirror: Path
    name: str
    start_sha: str  # the commit the worktree was created at (resume branch head or base head)
    resumed: bool  # True when it started from the task's own existing branch
    merged: dict[str, str] = field(default_factory=dict)  # dependency branch → sha merged in


class FileChange(BaseModel):
    path: str
    status: Literal["A", "M", "D", "R"]
    old_path: str | None = None  # for renames


# --- git invocation ------------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "SSH_ASKPASS"}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "LC_ALL": "C",
            "LANGUAGE": "C",
        }
    )
    return env


def auth_header(token: str) -> str:
    """The value of git's ``http.extraheader`` for an installation token."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"AUTHORIZATION: basic {basic}"


def remote_invocation(token: str | None) -> tuple[list[str], dict[str, str]]:
    """Extra git arguments and environment for one remote command (fetch/push) with ``token``.

    The header goes into the environment (``GIT_CONFIG_COUNT``), which is per command, written nowhere
    and, unlike ``-c`` arguments, not readable by other users through the process list.
    """
    args = ["-c", "credential.helper=", "-c", "http.followRedirects=false"]
    env: dict[str, str] = {}
    if token:
        env = {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraheader",
            "GIT_CONFIG_VALUE_0": auth_header(token),
        }
    return args, env


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise WorkspaceError("refusing a git URL with credentials in it (the token is passed per command)")
    if url.startswith("-"):
        raise WorkspaceError("invalid git URL")


@dataclass
class _Git:
    """Runs git with the safe defaults; raises redacted ``WorkspaceError``s."""

    secrets: Sequence[str] = ()

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        git_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        pre_args: Sequence[str] = (),
        timeout_s: float = _LOCAL_TIMEOUT_S,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["git", *_SAFE_CONFIG, *pre_args]
        if git_dir is not None:
            argv += ["--git-dir", str(git_dir)]
        argv += list(args)
        full_env = _base_env()
        if env:
            full_env.update(env)
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise WorkspaceError(self._clean(f"git {args[0]} timed out after {timeout_s:g}s")) from None
        except OSError as exc:
            raise WorkspaceError(self._clean(f"could not run git: {exc}")) from None
        if check and proc.returncode != 0:
            raise WorkspaceError(self.describe(args, proc))
        return proc

    def describe(self, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> str:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-4000:]
        return self._clean(f"git {args[0]} failed (exit {proc.returncode}): {detail}")

    def _clean(self, text: str) -> str:
        return redact(text, self.secrets)


_git = _Git()


def _rev(path: Path, rev: str, *, git_dir: bool = False) -> str | None:
    """The commit sha ``rev`` names, or None."""
    proc = _git.run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        cwd=None if git_dir else path,
        git_dir=path if git_dir else None,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def valid_branch_name(branch: str) -> bool:
    """git's ``check-ref-format`` rules for ``refs/heads/<branch>`` (plus: no leading ``-``)."""
    if (
        not branch
        or branch.startswith(("-", "/"))
        or branch.endswith(("/", "."))
        or branch == "@"
        or any(s in branch for s in ("..", "//", "@{"))
        or any(ord(c) < 0x20 or c == "\x7f" or c in " ~^:?*[\\" for c in branch)
    ):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in branch.split("/"))


def _check_branch(branch: str) -> None:
    if not valid_branch_name(branch):
        raise WorkspaceError(f"invalid branch name {branch!r}")


# --- locking ---------------------------------------------------------------------------------------------


@contextmanager
def _locked(mirror: Path, timeout_s: float = _LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive lock on a mirror across threads and processes (one open file description per holder)."""
    lock_path = mirror.parent / f"{mirror.name}.lock"
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
                    raise WorkspaceError(f"timed out waiting for the lock on {mirror.name}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- the workspace -----------------------------------------------------------------------------------------


class Workspace:
    def __init__(self, mirrors_dir: Path, worktrees_dir: Path) -> None:
        self.mirrors_dir = Path(os.path.abspath(mirrors_dir))
        self.worktrees_dir = Path(os.path.abspath(worktrees_dir))

    # -- mirrors ------------------------------------------------------------------------------------------

    def mirror_path(self, repo_key: str) -> Path:
        """``<mirrors_dir>/<owner>/<repo>.git`` for ``repo_key`` = ``"owner/repo"``."""
        parts = repo_key.split("/")
        if len(parts) != 2 or not all(_SAFE_COMPONENT.match(p) and p not in (".", "..") for p in parts):
            raise WorkspaceError(f"invalid repository key {repo_key!r} (expected 'owner/repo')")
        return self.mirrors_dir / parts[0] / f"{parts[1]}.git"

    def sync_mirror(self, repo_key: str, clone_url: str, token: str | None) -> Path:
        """Create the mirror if needed and fetch all branches into it (pruning deleted ones)."""
        _check_url(clone_url)
        mirror = self.mirror_path(repo_key)
        git = _Git(secrets=[token] if token else [])
        with _locked(mirror):
            if not (mirror / "HEAD").is_file() or not (mirror / "objects").is_dir():
                self._init_mirror(mirror)
            args, env = remote_invocation(token)
            git.run(
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
                timeout_s=_NETWORK_TIMEOUT_S,
            )
            _tidy(mirror)
        return mirror

    @staticmethod
    def _init_mirror(mirror: Path) -> None:
        if mirror.exists():
            shutil.rmtree(mirror)  # a half-created mirror from a crash
        tmp = mirror.parent / f".{mirror.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        _git.run(["-c", "init.defaultBranch=main", "init", "--bare", "--quiet", str(tmp)])
        for key, value in (
            ("gc.auto", "0"),
            ("maintenance.auto", "false"),
            ("core.logAllRefUpdates", "false"),
        ):
            _git.run(["config", key, value], git_dir=tmp)
        os.rename(tmp, mirror)

    def list_files(self, mirror: Path, branch: str) -> list[str]:
        """Every file path in ``branch`` (as of the mirror's last fetch), in git's order."""
        _check_branch(branch)
        sha = _rev(mirror, REMOTE_REFS + branch, git_dir=True)
        if sha is None:
            raise WorkspaceError(f"branch {branch!r} does not exist in the mirror")
        out = _git.run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", sha], git_dir=mirror).stdout
        return [p for p in out.split("\0") if p]

    def remote_branch_sha(self, mirror: Path, branch: str) -> str | None:
        """The sha of ``branch`` as of the mirror's last fetch (or Otto's last push), or None."""
        _check_branch(branch)
        return _rev(mirror, REMOTE_REFS + branch, git_dir=True)

    # -- worktrees ----------------------------------------------------------------------------------------

    def worktree_path(self, name: str) -> Path:
        if not _SAFE_COMPONENT.match(name) or name in (".", "..") or name.endswith(".sandbox"):
            raise WorkspaceError(f"invalid worktree name {name!r}")
        return self.worktrees_dir / name

    def create_worktree(
        self,
        mirror: Path,
        name: str,
        base_branch: str,
        merge_branches: Sequence[str],
        resume_branch: str | None,
        author: Identity,
    ) -> Worktree:
        """A fresh detached worktree at ``<worktrees_dir>/<name>``.

        If ``resume_branch`` exists in the mirror the worktree starts at its head and nothing is merged
        (a retry continues on the task's own branch). Otherwise it starts at ``base_branch`` and merges
        each of ``merge_branches`` in order (fast-forward when possible, else a merge commit by
        ``author``); a conflict removes the worktree and raises :class:`MergeConflict` naming the branch.
        A leftover directory of the same name (a crashed attempt) is removed first.
        """
        path = self.worktree_path(name)
        for b in [base_branch, *merge_branches, *([resume_branch] if resume_branch else [])]:
            _check_branch(b)
        with _locked(mirror):
            self._remove_locked(mirror, path)
            resumed = False
            start = _rev(mirror, REMOTE_REFS + resume_branch, git_dir=True) if resume_branch else None
            merges: list[tuple[str, str]] = []
            if start is not None:
                resumed = True
            else:
                start = _rev(mirror, REMOTE_REFS + base_branch, git_dir=True)
                if start is None:
                    raise WorkspaceError(f"base branch {base_branch!r} does not exist in the mirror")
                for b in merge_branches:
                    sha = _rev(mirror, REMOTE_REFS + b, git_dir=True)
                    if sha is None:
                        raise WorkspaceError(f"branch {b!r} to merge does not exist in the mirror")
                    merges.append((b, sha))
            path.parent.mkdir(parents=True, exist_ok=True)
            _git.run(["worktree", "add", "--detach", "--quiet", str(path), start], git_dir=mirror)
        worktree = Worktree(path=path, mirror=mirror, name=name, start_sha=start, resumed=resumed)
        try:
            for branch, sha in merges:
                self._merge(worktree, branch, sha, author)
                worktree.merged[branch] = sha
        except BaseException:
            self.remove_worktree(worktree)
            raise
        return worktree

    def _merge(self, worktree: Worktree, branch: str, sha: str, author: Identity) -> None:
        proc = _git.run(
            ["merge", "--no-edit", "--no-verify", "-m", f"Merge branch '{branch}'", sha],
            cwd=worktree.path,
            env=_identity_env(author),
            check=False,
        )
        if proc.returncode == 0:
            return
        conflicted = _git.run(
            ["diff", "--name-only", "--diff-filter=U", "-z"], cwd=worktree.path, check=False
        )
        files = [f for f in conflicted.stdout.split("\0") if f]
        _git.run(["merge", "--abort"], cwd=worktree.path, check=False)
        if files:
            raise MergeConflict(branch, files)
        raise WorkspaceError(f"merging branch {branch!r} failed: " + _git.describe(["merge"], proc))

    def remove_worktree(self, worktree: Worktree | Path) -> None:
        """Remove the worktree directory, its sandbox dir and its metadata in the mirror. Idempotent."""
        mirror: Path | None
        if isinstance(worktree, Worktree):
            path, mirror = worktree.path, worktree.mirror
        else:
            path, mirror = worktree, self._mirror_of(worktree)
        if mirror is None:
            _rmtree(path)
            _rmtree(path.parent / f"{path.name}.sandbox")
            return
        with _locked(mirror):
            self._remove_locked(mirror, path)

    def _remove_locked(self, mirror: Path, path: Path) -> None:
        if path.exists():
            _git.run(["worktree", "remove", "--force", "--force", str(path)], git_dir=mirror, check=False)
            _rmtree(path)
        _rmtree(path.parent / f"{path.name}.sandbox")
        _tidy(mirror)

    @staticmethod
    def _mirror_of(path: Path) -> Path | None:
        if not path.exists():
            return None
        proc = _git.run(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=path, check=False)
        return Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None

    # -- commits --------------------------------------------------------------------------------------------

    def head_sha(self, worktree: Worktree) -> str:
        sha = _rev(worktree.path, "HEAD")
        if sha is None:
            raise WorkspaceError(f"worktree {worktree.name!r} has no HEAD commit")
        return sha

    def commit_all(self, worktree: Worktree, message: str, author: Identity) -> str | None:
        """Stage everything (``.gitignore`` respected) and commit as ``author`` (author and committer).

        Returns the new sha, or None when there was nothing to commit. No hooks run.
        """
        _git.run(["add", "--all"], cwd=worktree.path)
        if _git.run(["diff", "--cached", "--quiet"], cwd=worktree.path, check=False).returncode == 0:
            return None
        _git.run(
            ["commit", "--quiet", "--no-verify", "-m", message],
            cwd=worktree.path,
            env=_identity_env(author),
        )
        return self.head_sha(worktree)

    def changed_files(self, worktree: Worktree, base_ref: str) -> list[FileChange]:
        """Files changed by the worktree's commits since their merge-base with ``base_ref``.

        ``base_ref`` is a branch name of the remote (``refs/remotes/origin/<name>`` in the mirror, as of the
        last fetch) or any commit-ish.
        Committed changes only: call after :meth:`commit_all`. Renames are detected (status ``R``).
        """
        base = _rev(worktree.path, REMOTE_REFS + base_ref) or _rev(worktree.path, base_ref)
        if base is None:
            raise WorkspaceError(f"unknown base {base_ref!r}")
        mb = _git.run(["merge-base", base, "HEAD"], cwd=worktree.path, check=False).stdout.strip()
        if not mb:
            raise WorkspaceError(f"HEAD has no common history with {base_ref!r}")
        out = _git.run(
            ["diff", "--name-status", "-z", "--find-renames", mb, "HEAD"],
            cwd=worktree.path,
        ).stdout
        return _parse_name_status(out)

    # -- push ---------------------------------------------------------------------------------------------

    def rebase_onto(self, worktree: Worktree, onto_branch: str, upstream_sha: str, author: Identity) -> str:
        """``git rebase --onto origin/<onto_branch> <upstream_sha>``.

        Replays the commits after ``upstream_sha`` (e.g. a dependency's head before it was squash-merged) onto
        the base branch. Returns the new HEAD; a conflict aborts the rebase and raises :class:`MergeConflict`.
        """
        _check_branch(onto_branch)
        onto = REMOTE_REFS + onto_branch
        env = _identity_env(author)
        proc = _git.run(
            ["rebase", "--no-autosquash", "--onto", onto, upstream_sha],
            cwd=worktree.path,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            _git.run(["rebase", "--abort"], cwd=worktree.path, check=False)
            raise MergeConflict(onto_branch, [])
        return self.head_sha(worktree)

    def push(
        self,
        worktree: Worktree,
        clone_url: str,
        token: str | None,
        branch: str,
        expected_remote_sha: str | None,
    ) -> str:
        """Push HEAD to ``refs/heads/<branch>``; returns the pushed sha.

        With ``expected_remote_sha``: ``--force-with-lease=refs/heads/<branch>:<expected>`` (the push
        succeeds only if the remote branch is still exactly there). Without: a plain push, which creates
        the branch or fast-forwards it. Anything the remote refuses raises :class:`PushRejected`; other
        commits on the remote are never overwritten. On success the mirror's record of the branch
        (``refs/remotes/origin/<branch>``, what :meth:`remote_branch_sha` reads) is set to the pushed sha.
        """
        _check_url(clone_url)
        _check_branch(branch)
        sha = self.head_sha(worktree)
        git = _Git(secrets=[token] if token else [])
        ref = f"refs/heads/{branch}"
        args, env = remote_invocation(token)
        push_args = ["push", "--porcelain", "--no-verify", "--no-follow-tags"]
        if expected_remote_sha:
            push_args.append(f"--force-with-lease={ref}:{expected_remote_sha}")
        push_args += ["--end-of-options", clone_url, f"{sha}:{ref}"]
        proc = git.run(
            push_args, cwd=worktree.path, pre_args=args, env=env, timeout_s=_NETWORK_TIMEOUT_S, check=False
        )
        if proc.returncode != 0:
            rejected = [line for line in proc.stdout.splitlines() if line.startswith("!")]
            message = git.describe(["push"], proc)
            if rejected:
                reason = git._clean(rejected[0].split("\t")[-1])
                raise PushRejected(f"push to {branch!r} rejected: {reason}. {message}")
            raise WorkspaceError(message)
        with _locked(worktree.mirror):
            _git.run(["update-ref", REMOTE_REFS + branch, sha], git_dir=worktree.mirror, check=False)
        return sha


def _tidy(mirror: Path) -> None:
    """Prune stale worktree metadata and delete local branches no live worktree has checked out."""
    _git.run(["worktree", "prune"], git_dir=mirror, check=False)
    listing = _git.run(["worktree", "list", "--porcelain"], git_dir=mirror, check=False).stdout
    in_use = {line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("branch ")}
    refs = _git.run(
        ["for-each-ref", "--format=%(refname)", "refs/heads/"], git_dir=mirror, check=False
    ).stdout
    for ref in refs.split():
        if ref not in in_use:
            _git.run(["update-ref", "-d", ref], git_dir=mirror, check=False)


def _identity_env(who: Identity) -> dict[str, str]:
    if not (_valid_identity_part(who.name) and _valid_identity_part(who.email)):
        raise WorkspaceError(f"invalid git identity {who.name!r} <{who.email!r}>")
    return {
        "GIT_AUTHOR_NAME": who.name,
        "GIT_AUTHOR_EMAIL": who.email,
        "GIT_COMMITTER_NAME": who.name,
        "GIT_COMMITTER_EMAIL": who.email,
    }


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():

        def onerror(func: object, p: str, exc: object) -> None:
            # Read-only directories (e.g. Go's module cache) cannot be emptied until made writable.
            try:
                os.chmod(os.path.dirname(p), 0o700)
                os.chmod(p, 0o700)
            except OSError:
                return
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.unlink(p)
                except OSError:
                    pass

        shutil.rmtree(path, onerror=onerror)


def _parse_name_status(out: str) -> list[FileChange]:
    fields = out.split("\0")
    changes: list[FileChange] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        kind = status[0]
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
        if kind == "A":
            changes.append(FileChange(path=path, status="A"))
        elif kind == "D":
            changes.append(FileChange(path=path, status="D"))
        else:  # M, T (type change), U
            changes.append(FileChange(path=path, status="M"))
    return changes
