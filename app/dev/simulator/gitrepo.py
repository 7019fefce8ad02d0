"""Real git operations on the simulator's bare repositories (``git`` subprocesses, no shell)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ZERO_SHA = "0" * 40


class GitError(RuntimeError):
    pass


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author_name: str
    author_email: str
    author_date: str
    committer_name: str
    committer_email: str
    committer_date: str
    message: str


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str  # added | removed | modified | renamed
    additions: int
    deletions: int
    sha: str | None
    patch: str
    previous_filename: str | None = None


def git_env(author: Identity | None = None, committer: Identity | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"})
    if author is not None:
        env.update({"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email})
    who = committer or author
    if who is not None:
        env.update({"GIT_COMMITTER_NAME": who.name, "GIT_COMMITTER_EMAIL": who.email})
    return env


def run_git(
    repo: Path,
    *args: str,
    input_bytes: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=input_bytes,
        capture_output=True,
        env=env or git_env(),
        check=False,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def git_out(repo: Path, *args: str) -> str:
    return run_git(repo, *args).stdout.decode().strip()


def init_bare(path: Path, default_branch: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    run_git(path, "init", "--bare", "--quiet", f"--initial-branch={default_branch}")
    run_git(path, "config", "http.receivepack", "true")
    run_git(path, "config", "uploadpack.allowAnySHA1InWant", "true")


def resolve(repo: Path, rev: str) -> str | None:
    """Return the commit sha of ``rev`` or None when it does not exist (or looks like an option)."""
    if not rev or rev.startswith("-"):
        return None
    proc = run_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def branch_sha(repo: Path, branch: str) -> str | None:
    return resolve(repo, f"refs/heads/{branch}")


def list_refs(repo: Path) -> dict[str, str]:
    out = git_out(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    refs: dict[str, str] = {}
    for line in out.splitlines():
        name, _, sha = line.partition(" ")
        refs[name] = sha
    return refs


def update_ref(repo: Path, ref: str, new: str, old: str | None = None) -> None:
    args = ["update-ref", ref, new] + ([old] if old is not None else [])
    run_git(repo, *args)


def delete_ref(repo: Path, ref: str) -> None:
    run_git(repo, "update-ref", "-d", ref)


def commit_info(repo: Path, sha: str) -> CommitInfo:
    fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
    out = run_git(repo, "log", "-1", f"--format={fmt}", sha).stdout.decode()
    parts = out.split("\x00")
    return CommitInfo(
        sha=parts[0],
        tree=parts[1],
        parents=parts[2].split(),
        author_name=parts[3],
        author_email=parts[4],
        author_date=parts[5],
        committer_name=parts[6],
        committer_email=parts[7],
        committer_date=parts[8],
        message=parts[9].rstrip("\n"),
    )


def read_blob(repo: Path, ref: str, path: str) -> bytes | None:
    proc = run_git(repo, "cat-file", "blob", f"{ref}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def object_type(repo: Path, ref: str, path: str) -> str | None:
    proc = run_git(repo, "cat-file", "-t", f"{ref}:{path}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def object_sha(repo: Path, ref: str, path: str) -> str | None:
    proc = run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}:{path}", check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def list_tree(repo: Path, ref: str, path: str) -> list[tuple[str, str, str, int]]:
    """Entries (type, sha, name, size) of the directory ``path`` ("" for the root) at ``ref``."""
    spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
    out = git_out(repo, "ls-tree", "-l", spec)
    entries = []
    for line in out.splitlines():
        meta, _, name = line.partition("\t")
        _mode, kind, sha, size = meta.split()
        entries.append((kind, sha, name, int(size) if size.isdigit() else 0))
    return entries


def commit_files(
    repo: Path,
    parent: str | None,
    files: dict[str, str | None],
    message: str,
    author: Identity,
) -> str:
    """Create a commit on top of ``parent`` that writes (or, for None, deletes) ``files``; return its sha."""
    with tempfile.TemporaryDirectory(prefix="sim-index-") as tmp:
        env = git_env(author) | {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent is not None:
            run_git(repo, "read-tree", parent, env=env)
        for path, content in files.items():
            if content is None:
                # mode 0 removes the entry (``--force-remove`` would want a work tree; these are bare)
                run_git(
                    repo,
                    "update-index",
                    "--index-info",
                    input_bytes=f"0 {ZERO_SHA}\t{path}\n".encode(),
                    env=env,
                )
                continue
            blob = run_git(repo, "hash-object", "-w", "--stdin", input_bytes=content.encode(), env=env)
            sha = blob.stdout.decode().strip()
            run_git(repo, "update-index", "--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
        tree = run_git(repo, "write-tree", env=env).stdout.decode().strip()
    return commit_tree(repo, tree, [parent] if parent else [], message, author)


def commit_tree(
    repo: Path,
    tree: str,
    parents: list[str],
    message: str,
    author: Identity,
    committer: Identity | None = None,
) -> str:
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    proc = run_git(repo, *args, input_bytes=message.encode(), env=git_env(author, committer))
    return proc.stdout.decode().strip()


def merge_base(repo: Path, a: str, b: str) -> str | None:
    proc = run_git(repo, "merge-base", a, b, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def trial_merge(repo: Path, base: str, head: str) -> str | None:
    """A real three-way merge without a worktree: the merged tree sha, or None on conflicts."""
    proc = run_git(repo, "merge-tree", "--write-tree", "--no-messages", base, head, check=False)
    if proc.returncode == 0:
        return proc.stdout.decode().split()[0]
    if proc.returncode == 1:
        return None
    raise GitError(f"git merge-tree failed: {proc.stderr.decode(errors='replace').strip()}")


def commits_between(repo: Path, base: str, head: str) -> list[str]:
    """Commits reachable from ``head`` but not ``base``, oldest first."""
    out = git_out(repo, "rev-list", "--reverse", f"{base}..{head}")
    return out.split()


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """True when ``descendant`` contains ``ancestor`` (a push from one to the other is not forced)."""
    return run_git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0


def commits_excluding(repo: Path, head: str, exclude: list[str], limit: int | None = None) -> list[str]:
    """Commits reachable from ``head`` and from none of ``exclude``, oldest first (the newest ``limit``)."""
    revs = "".join(f"{rev}\n" for rev in [head, *(f"^{sha}" for sha in exclude)])
    args = ["rev-list", "--topo-order", "--stdin"] + ([f"--max-count={limit}"] if limit else [])
    return run_git(repo, *args, input_bytes=revs.encode()).stdout.decode().split()[::-1]


def changed_paths(repo: Path, parent: str | None, sha: str) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, modified) paths of ``sha`` against ``parent`` (the empty tree when None); a rename
    is a removal and an addition, as in GitHub's push payloads."""
    out = git_out(repo, "diff-tree", "-r", "-z", "--no-renames", "--name-status", parent or EMPTY_TREE, sha)
    tokens = out.split("\x00")
    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []
    for code, path in zip(tokens[::2], tokens[1::2], strict=False):
        {"A": added, "D": removed}.get(code[:1], modified).append(path)
    return added, removed, modified


def rebase_onto(repo: Path, onto: str, base: str, head: str, committer: Identity) -> str | None:
    """Replay ``base..head`` (merges skipped) onto ``onto`` in a temporary worktree; None on conflicts."""
    with tempfile.TemporaryDirectory(prefix="sim-rebase-") as tmp:
        work = Path(tmp) / "wt"
        env = git_env(committer)
        run_git(repo, "worktree", "add", "--detach", "--quiet", str(work), onto, env=env)
        try:
            for sha in commits_between(repo, base, head):
                if len(commit_info(repo, sha).parents) > 1:
                    continue
                proc = run_git(
                    work,
                    "cherry-pick",
                    "--allow-empty",
                    "--keep-redundant-commits",
                    sha,
                    env=env,
                    check=False,
                )
                if proc.returncode != 0:
                    return None
            return git_out(work, "rev-parse", "HEAD")
        finally:
            run_git(repo, "worktree", "remove", "--force", str(work), check=False)
            shutil.rmtree(work, ignore_errors=True)
            run_git(repo, "worktree", "prune", check=False)


def diff_files(repo: Path, base: str, head: str) -> list[FileChange]:
    """Per-file changes between ``base`` and ``head`` (callers pass the merge base as ``base``)."""
    numstat = git_out(repo, "diff", "--numstat", "-z", "-M", base, head)
    status_out = git_out(repo, "diff", "--name-status", "-z", "-M", base, head)
    statuses: dict[str, tuple[str, str | None]] = {}
    tokens = [t for t in status_out.split("\x00") if t]
    i = 0
    while i < len(tokens):
        code = tokens[i]
        if code.startswith("R") or code.startswith("C"):
            statuses[tokens[i + 2]] = ("renamed", tokens[i + 1])
            i += 3
        else:
            kind = {"A": "added", "D": "removed"}.get(code[0], "modified")
            statuses[tokens[i + 1]] = (kind, None)
            i += 2
    counts: dict[str, tuple[int, int]] = {}
    raw = numstat.split("\x00")
    j = 0
    while j < len(raw):
        entry = raw[j]
        if not entry:
            j += 1
            continue
        adds, dels, name = entry.split("\t", 2)
        if name == "":  # rename: the next two tokens are old and new names
            name = raw[j + 2]
            j += 2
        counts[name] = (int(adds) if adds.isdigit() else 0, int(dels) if dels.isdigit() else 0)
        j += 1
    changes: list[FileChange] = []
    for name, (kind, previous) in statuses.items():
        added, deleted = counts.get(name, (0, 0))
        paths = [previous, name] if previous else [name]
        patch_out = run_git(repo, "diff", "-M", base, head, "--", *paths).stdout.decode(errors="replace")
        hunk_start = patch_out.find("\n@@")
        patch = patch_out[hunk_start + 1 :] if hunk_start >= 0 else ""
        sha = None if kind == "removed" else object_sha(repo, head, name)
        changes.append(FileChange(name, kind, added, deleted, sha, patch.rstrip("\n"), previous))
    return changes


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def commit_changes(repo: Path, sha: str) -> list[FileChange]:
    """The files a commit changed against its first parent (against the empty tree for a root commit)."""
    parents = commit_info(repo, sha).parents
    return diff_files(repo, parents[0] if parents else EMPTY_TREE, sha)


def rev_list(repo: Path, ref: str, path: str | None = None, limit: int | None = None) -> list[str]:
    """Commits reachable from ``ref`` (touching ``path`` when given), newest first."""
    args = ["rev-list", ref] + ([f"--max-count={limit}"] if limit else []) + (["--", path] if path else [])
    return git_out(repo, *args).split()


def diff_stats(repo: Path, base: str, head: str) -> tuple[int, int, int]:
    """(changed files, additions, deletions) between two commits."""
    out = git_out(repo, "diff", "--numstat", "-M", base, head)
    files = adds = dels = 0
    for line in out.splitlines():
        a, d, _name = line.split("\t", 2)
        files += 1
        adds += int(a) if a.isdigit() else 0
        dels += int(d) if d.isdigit() else 0
    return files, adds, dels
