"""Git workspaces against real repositories: a bare "origin" on disk stands in for GitHub."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from app.workspace import (
    GitIdentity,
    MergeConflict,
    PushRejected,
    Workspace,
    WorkspaceError,
    Worktree,
    handover,
    valid_branch_name,
)
from app.workspace.git import auth_header, remote_invocation

BOT = GitIdentity(name="otto[bot]", email="123+otto[bot]@users.noreply.github.com")
TOKEN = "ghs_FAKEtoken0123456789abcdefABCDEF"
HUMAN_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Human",
    "GIT_AUTHOR_EMAIL": "human@example.com",
    "GIT_COMMITTER_NAME": "Human",
    "GIT_COMMITTER_EMAIL": "human@example.com",
}


def otto_git(wt: Worktree, *args: str) -> str:
    """Git on Otto's side of a checkout (its own git dir; the work tree's .git is the sandbox's)."""
    return git(wt.path, f"--git-dir={wt.git_dir}", *args)


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=HUMAN_ENV, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


class Origin:
    """A bare repository plus a human's clone of it."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "origin.git"
        self.url = str(self.path)
        git(tmp, "init", "-q", "--bare", "-b", "main", str(self.path))
        self.clone = tmp / "human"
        git(tmp, "init", "-q", "-b", "main", str(self.clone))
        (self.clone / "README.md").write_text("# demo\n")
        (self.clone / "app.py").write_text("def add(a, b):\n    return a + b\n")
        (self.clone / ".gitignore").write_text("*.log\n")
        git(self.clone, "add", "-A")
        git(self.clone, "commit", "-q", "-m", "initial")
        git(self.clone, "push", "-q", self.url, "main")

    def sha(self, branch: str) -> str | None:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=self.path,
            env=HUMAN_ENV,
            capture_output=True,
            text=True,
        )
        return proc.stdout.strip() or None

    def human_commit(self, branch: str, filename: str, content: str, start: str = "main") -> str:
        git(self.clone, "fetch", "-q", self.url, "+refs/heads/*:refs/remotes/origin/*")
        git(self.clone, "checkout", "-q", "-B", branch, f"origin/{start}")
        (self.clone / filename).write_text(content)
        git(self.clone, "add", "-A")
        git(self.clone, "commit", "-q", "-m", f"human edits {filename}")
        git(self.clone, "push", "-q", "--force", self.url, f"HEAD:refs/heads/{branch}")
        return git(self.clone, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    # commands in these tests run on the host (no sandbox), so the checkout's own .git uses host paths
    return Workspace(tmp_path / "mirrors", tmp_path / "checkouts", sandbox_objects=None, pool_size=2)


def _task(ws: Workspace, origin: Origin, name: str, **kw: object) -> Worktree:
    mirror = ws.sync_mirror("acme/demo", origin.url, None)
    args: dict[str, object] = {
        "base_branch": "main",
        "merge_branches": [],
        "resume_branch": None,
        "author": BOT,
    }
    args.update(kw)
    return ws.create_worktree(mirror, name, **args)  # type: ignore[arg-type]


# --- mirror ---------------------------------------------------------------------------------------


def test_mirror_is_created_fetched_and_pruned(ws: Workspace, origin: Origin, tmp_path: Path) -> None:
    mirror = ws.sync_mirror("acme/demo", origin.url, None)
    assert mirror == tmp_path / "mirrors" / "acme" / "demo.git"
    assert ws.remote_branch_sha(mirror, "main") == origin.sha("main")
    assert ws.remote_branch_sha(mirror, "feature") is None

    feature = origin.human_commit("feature", "f.txt", "f\n")
    main2 = origin.human_commit("main", "m.txt", "m\n")
    assert ws.sync_mirror("acme/demo", origin.url, None) == mirror
    assert ws.remote_branch_sha(mirror, "feature") == feature
    assert ws.remote_branch_sha(mirror, "main") == main2

    git(origin.path, "update-ref", "-d", "refs/heads/feature")
    ws.sync_mirror("acme/demo", origin.url, None)
    assert ws.remote_branch_sha(mirror, "feature") is None
    assert "url" not in (mirror / "config").read_text()  # no remote configured at all
    assert ws.list_files(mirror, "main") == [".gitignore", "README.md", "app.py", "m.txt"]
    with pytest.raises(WorkspaceError):
        ws.list_files(mirror, "feature")


def test_the_checkouts_own_git_is_the_sandboxs_and_never_otto_s(
    ws: Workspace, origin: Origin, tmp_path: Path
) -> None:
    wt = _task(ws, origin, "t1")
    assert git(wt.path, "status", "--porcelain") == ""  # the agent's git works: clean at the start
    assert git(wt.path, "rev-parse", "HEAD") == origin.sha("main") == wt.start_sha
    assert git(wt.path, "rev-parse", "origin/main") == origin.sha("main")  # the base, as origin/<branch>
    # The agent plays with git in its checkout: branches, commits, and config meant for Otto's own git.
    marker = tmp_path / "filter-ran"
    git(wt.path, "checkout", "-q", "-b", "main")
    git(wt.path, "config", "filter.evil.clean", f"sh -c 'touch {marker}; cat'")
    git(wt.path, "config", "core.hooksPath", str(tmp_path))
    git(wt.path, "config", "url.http://127.0.0.1:9/.insteadOf", origin.url)
    (wt.path / ".gitattributes").write_text("* filter=evil\n")
    (wt.path / "x.py").write_text("x = 1\n")
    git(wt.path, "add", "-A")
    git(wt.path, "commit", "-q", "-m", "the agent's own commit")
    marker.unlink(missing_ok=True)  # the agent's own git may run its own filter, inside its sandbox
    sha = ws.commit_all(wt, "agent work", BOT)
    assert sha is not None
    assert not marker.exists()
    shown = subprocess.run(
        ["git", "--git-dir", str(wt.mirror), "show", f"{sha}:x.py"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == "x = 1\n"
    assert ws.push(wt, origin.url, None, "otto/1/t1", None) == sha  # insteadOf was not followed
    assert origin.sha("otto/1/t1") == sha
    assert git(wt.mirror, "for-each-ref", "refs/heads/") == ""  # nothing of the agent's reached the mirror
    assert "evil" not in (wt.mirror / "config").read_text()
    ws.remove_worktree(wt)


def test_invalid_keys_names_and_urls(ws: Workspace, origin: Origin) -> None:
    for key in ["acme", "acme/demo/x", "../demo", "acme/..", "acme/de mo"]:
        with pytest.raises(WorkspaceError):
            ws.sync_mirror(key, origin.url, None)
    with pytest.raises(WorkspaceError, match="credentials"):
        ws.sync_mirror("acme/demo", f"https://x-access-token:{TOKEN}@github.com/acme/demo.git", None)
    mirror = ws.sync_mirror("acme/demo", origin.url, None)
    with pytest.raises(WorkspaceError, match="does not exist"):
        ws.create_worktree(mirror, "t", "nope", [], None, BOT)
    with pytest.raises(WorkspaceError, match="invalid branch"):
        ws.create_worktree(mirror, "t", "main", ["bad..name"], None, BOT)


@pytest.mark.parametrize(
    "name",
    [
        *["otto/12/t1-add-login", "main", "feature/x_y.z", "a", "release-1.0", "-x", "a..b", "a b", "a~1"],
        *["a^", "a:b", "a?", "a*", "a[b", "a\\b", "a/", "/a", "a//b", "a.", ".a", "a/.b", "a.lock"],
        *["a/b.lock/c", "@", "a@{b", "", "a\x01", "a\x7f"],
    ],
)
def test_branch_names_follow_git_rules(name: str) -> None:
    proc = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True)
    stricter = name.startswith("-") or name == "@"  # accepted by git, refused by us
    assert valid_branch_name(name) == (proc.returncode == 0 and not stricter)


# --- worktrees ------------------------------------------------------------------------------------


def test_concurrent_tasks_from_one_mirror(ws: Workspace, origin: Origin) -> None:
    results: dict[str, Worktree] = {}
    errors: list[BaseException] = []

    def task(name: str) -> None:
        try:
            wt = _task(ws, origin, name)
            (wt.path / f"{name}.txt").write_text(name)
            assert ws.commit_all(wt, f"task {name}", BOT) is not None
            ws.push(wt, origin.url, None, f"otto/1/{name}", None)
            results[name] = wt
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert set(results) == {f"t{i}" for i in range(4)}
    for name, wt in results.items():
        assert (wt.path / "app.py").exists()
        assert (wt.path / f"{name}.txt").exists()
        assert origin.sha(f"otto/1/{name}") == ws.head_sha(wt)
    assert len({wt.path for wt in results.values()}) == 4  # four checkouts, none shared


def test_dependency_branches_are_merged(ws: Workspace, origin: Origin) -> None:
    a = _task(ws, origin, "a")
    (a.path / "a.txt").write_text("from A\n")
    ws.commit_all(a, "task A", BOT)
    ws.push(a, origin.url, None, "otto/1/a", None)
    c = _task(ws, origin, "c")
    (c.path / "c.txt").write_text("from C\n")
    ws.commit_all(c, "task C", BOT)
    ws.push(c, origin.url, None, "otto/1/c", None)

    b = _task(ws, origin, "b", merge_branches=["otto/1/a", "otto/1/c"])
    assert (b.path / "a.txt").read_text() == "from A\n"
    assert (b.path / "c.txt").read_text() == "from C\n"
    assert b.merged == {"otto/1/a": ws.head_sha(a), "otto/1/c": ws.head_sha(c)}
    assert not b.resumed
    # A fast-forwarded; C needed a merge commit, made by the bot.
    head = otto_git(b, "log", "-1", "--format=%P|%an|%ae|%cn|%ce|%s")
    parents, an, ae, cn, ce, subject = head.split("|")
    assert len(parents.split()) == 2
    assert (an, ae, cn, ce) == (BOT.name, BOT.email, BOT.name, BOT.email)
    assert "otto/1/c" in subject


def test_merge_conflict_names_the_branch_and_cleans_up(ws: Workspace, origin: Origin) -> None:
    origin.human_commit("one", "app.py", "one\n")
    origin.human_commit("two", "app.py", "two\n")
    mirror = ws.sync_mirror("acme/demo", origin.url, None)
    with pytest.raises(MergeConflict) as info:
        ws.create_worktree(mirror, "b", "main", ["one", "two"], None, BOT)
    assert info.value.branch == "two"
    assert info.value.files == ["app.py"]
    assert "'two'" in str(info.value)
    again = _task(ws, origin, "b")  # the checkout was given back: the next one takes the same slot, clean
    assert ws.head_sha(again) == origin.sha("main")
    assert git(again.path, "status", "--porcelain") == ""
    assert git(mirror, "worktree", "list", "--porcelain").count("worktree ") == 1
    with pytest.raises(WorkspaceError, match="'missing'"):
        ws.create_worktree(mirror, "b", "main", ["missing"], None, BOT)


def test_resume_continues_on_the_task_branch(ws: Workspace, origin: Origin) -> None:
    first = _task(ws, origin, "t1-a1")
    (first.path / "x.py").write_text("x = 1\n")
    sha1 = ws.commit_all(first, "attempt 1", BOT)
    assert sha1 is not None
    ws.push(first, origin.url, None, "otto/1/t1", None)
    ws.remove_worktree(first)

    second = _task(ws, origin, "t1-a2", merge_branches=["does-not-matter"], resume_branch="otto/1/t1")
    assert second.resumed
    assert second.start_sha == sha1
    assert second.merged == {}
    assert (second.path / "x.py").read_text() == "x = 1\n"
    (second.path / "x.py").write_text("x = 2\n")
    sha2 = ws.commit_all(second, "attempt 2", BOT)
    assert otto_git(second, "rev-parse", "HEAD^") == sha1
    assert ws.push(second, origin.url, None, "otto/1/t1", sha1) == sha2
    assert origin.sha("otto/1/t1") == sha2

    # A resume branch that does not exist yet: start from base.
    fresh = _task(ws, origin, "t2-a1", resume_branch="otto/1/t2")
    assert not fresh.resumed
    assert fresh.start_sha == origin.sha("main")


def test_a_used_checkout_is_reset_to_exactly_its_commit(ws: Workspace, origin: Origin) -> None:
    wt = _task(ws, origin, "t1")
    path = wt.path
    (wt.path / "junk.txt").write_text("half-done work")
    (wt.path / "app.py").write_text("broken\n")
    (wt.path / "build.log").write_text("ignored, still removed\n")  # *.log is in .gitignore
    (wt.path / "nested" / "repo").mkdir(parents=True)
    git(wt.path / "nested" / "repo", "init", "-q")
    (wt.path / "escape").symlink_to("/etc")
    (wt.home / ".cache").mkdir()
    (wt.tmp / "x").write_text("tmp")
    ws.remove_worktree(wt)
    ws.remove_worktree(wt)  # idempotent
    again = _task(ws, origin, "t2")
    assert again.path == path  # the same slot, reused warm
    assert sorted(p.name for p in again.path.iterdir()) == [".git", ".gitignore", "README.md", "app.py"]
    assert (again.path / "app.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert list(again.home.iterdir()) == []
    assert list(again.tmp.iterdir()) == []
    assert git(again.path, "status", "--porcelain", "--ignored") == ""


def test_a_checkout_that_cannot_be_reset_is_rebuilt(ws: Workspace, origin: Origin) -> None:
    wt = _task(ws, origin, "t1")
    (wt.git_dir / "HEAD").write_text("garbage\n")  # a crash left Otto's git dir broken
    ws.remove_worktree(wt)
    again = _task(ws, origin, "t1")
    assert again.path == wt.path
    assert ws.head_sha(again) == origin.sha("main")
    assert (again.path / "app.py").exists()


def test_busy_checkouts_are_not_shared_and_extra_ones_are_removed(ws: Workspace, origin: Origin) -> None:
    held = [_task(ws, origin, f"t{i}") for i in range(3)]  # pool_size is 2
    assert len({w.path for w in held}) == 3
    for w in held:
        ws.remove_worktree(w)
    assert held[0].path.exists()
    assert held[1].path.exists()
    assert not held[2].path.exists()


# --- the warm reset: nothing of the previous task survives ---------------------------------------

RICH = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "VALUE = 'original'\n",
    "pkg1/x.py": "WHO = 'one'\n",
    "pkg2/x.py": "WHO = 'two'\n",
    "docs/guide.md": "# guide\n",
    "docs/deep/more.md": "more\n",
    "tool.sh": "#!/bin/sh\necho tool\n",
    "gone.txt": "deleted by the next commit\n",
    "edited.txt": "edited by the next commit\n",
}


def _rich(origin: Origin) -> None:
    """More shapes than the base repository: packages, a script, a symlink, nested directories."""
    git(origin.clone, "checkout", "-q", "main")
    for path, content in RICH.items():
        (origin.clone / path).parent.mkdir(parents=True, exist_ok=True)
        (origin.clone / path).write_text(content)
    (origin.clone / "tool.sh").chmod(0o755)
    (origin.clone / "readme-link").symlink_to("README.md")
    git(origin.clone, "add", "-A")
    git(origin.clone, "commit", "-q", "-m", "rich")
    git(origin.clone, "push", "-q", origin.url, "main")


def _move_main(origin: Origin) -> str:
    """Another task's commit lands on main: a new nested directory, an edit, a deletion, a mode change."""
    git(origin.clone, "checkout", "-q", "main")
    (origin.clone / "newdir" / "sub").mkdir(parents=True)
    (origin.clone / "newdir" / "sub" / "file.txt").write_text("new\n")
    (origin.clone / "edited.txt").write_text("edited\n")
    (origin.clone / "gone.txt").unlink()
    (origin.clone / "pkg" / "__init__.py").chmod(0o755)
    git(origin.clone, "add", "-A")
    git(origin.clone, "commit", "-q", "-m", "another task")
    git(origin.clone, "push", "-q", origin.url, "main")
    return git(origin.clone, "rev-parse", "HEAD")


def _snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a task could notice about a tree (but its .git): types, modes, contents, link targets,
    owners, user xattrs; never following symlinks."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            filenames = [f for f in filenames if f != ".git"]
        for name in ["", *dirnames, *filenames]:
            path = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(path), st.st_uid, st.st_gid)
                continue
            xattrs = tuple(
                sorted(a for a in os.listxattr(path, follow_symlinks=False) if a.startswith("user."))
            )
            kind: object = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else stat.S_IFMT(st.st_mode)
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, xattrs)
    return out


def _fresh_checkout(origin: Origin, sha: str, dest: Path, owner: tuple[int, int] | None = None) -> Path:
    git(dest.parent, "clone", "-q", "--no-checkout", origin.url, str(dest))
    git(dest, "checkout", "-q", "--detach", sha)
    if owner is not None:
        for p in [dest, *dest.rglob("*")]:
            if ".git" not in p.relative_to(dest).parts:
                os.lchown(p, *owner)
    return dest


def _leave_everything(wt: Worktree, outside: Path) -> None:
    """What a sandboxed task could leave in its checkout, $HOME and /tmp (Otto runs as root in the tests:
    these writes stand in for the sandbox's)."""
    p = wt.path
    (p / "junk" / "deep" / "er").mkdir(parents=True)
    (p / "junk" / "deep" / "er" / "file").write_text("junk")  # an untracked directory
    (p / "build.log").write_text("ignored")  # an ignored file (*.log)
    (p / "pkg" / "__pycache__").mkdir()
    (p / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0junk")  # untracked, in a tracked dir
    (p / "locked" / "inner").mkdir(parents=True)
    (p / "locked" / "inner" / "file").write_text("x")
    (p / "locked" / "inner").chmod(0)
    (p / "locked").chmod(0)  # a chmod 000 untracked directory
    (p / "escape").symlink_to(outside)  # a symlink out
    shutil.rmtree(p / "docs")
    (p / "docs").symlink_to(outside)  # a tracked directory replaced by a symlink out
    shutil.rmtree(p / ".git")
    (p / ".git").symlink_to(outside)  # its own .git, a symlink out
    git(p, "init", "-q", "nested")
    (p / "nested" / "f").write_text("nested")
    git(p / "nested", "add", "-A")
    git(p / "nested", "commit", "-q", "-m", "nested")  # a nested repository
    os.mkfifo(p / "fifo")  # git ignores FIFOs entirely: no status, no clean
    dir_fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as s:  # a socket (bound by a short path)
        s.bind(f"/proc/self/fd/{dir_fd}/sock")
    os.close(dir_fd)
    os.link(p / "app.py", p / "hardlink")  # a second name for a tracked file
    os.link(outside / "canary", p / "outside-link")  # and one for a file outside (not possible in a sandbox)
    os.setxattr(p / "README.md", "user.otto", b"left over")  # an xattr on a tracked file...
    os.setxattr(p / "pkg", "user.otto", b"left over")  # ...and on a tracked directory
    (p / "README.md").chmod(0o600)  # a mode git doesn't track
    (p / "tool.sh").chmod(0o644)  # the executable bit, which it does
    (p / "pkg1").chmod(0)  # a chmod 000 tracked directory
    mod = p / "pkg" / "mod.py"
    before = mod.stat()
    mod.write_text("VALUE = 'tampered'\n"[: before.st_size].ljust(before.st_size))  # same size...
    os.utime(mod, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...same mtime: git's own check can't tell
    (p / "pkg1").chmod(0o755)
    (p / "pkg1").rename(p / "swap")  # two directories swapped: their files keep their ctimes
    (p / "pkg2").rename(p / "pkg1")
    (p / "swap").rename(p / "pkg2")
    (p / "pkg1").chmod(0)
    with contextlib.suppress(OSError):  # an inode flag its owner may set (where the filesystem has them)
        fd = os.open(p / "pkg2", os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.ioctl(fd, 0x40086602, struct.pack("i", 0x80))  # FS_IOC_SETFLAGS: noatime
        finally:
            os.close(fd)
    (wt.home / ".cache").mkdir()
    (wt.home / ".cache" / "x").write_text("home")
    (wt.tmp / "x").write_text("tmp")


def _dir_flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, 0x80086601, struct.pack("i", 0)))[0])
    finally:
        os.close(fd)


@pytest.mark.parametrize("as_sandbox_uid", [False, True])
def test_a_reused_checkout_is_exactly_a_fresh_checkout(
    origin: Origin, tmp_path: Path, as_sandbox_uid: bool
) -> None:
    if as_sandbox_uid and os.geteuid() != 0:
        pytest.skip("handing checkouts to another uid needs root")
    owner = (65534, 65534) if as_sandbox_uid else None
    ws = Workspace(tmp_path / "mirrors", tmp_path / "checkouts", owner=owner, sandbox_objects=None)
    _rich(origin)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("must survive")
    wt = _task(ws, origin, "t1")
    assert not wt.warm
    assert _snapshot(wt.path) == _snapshot(_fresh_checkout(origin, wt.start_sha, tmp_path / "ref1", owner))
    _leave_everything(wt, outside)
    ws.remove_worktree(wt)
    main = _move_main(origin)

    again = _task(ws, origin, "t2")
    assert again.path == wt.path
    assert again.warm
    assert again.start_sha == main
    assert _snapshot(again.path) == _snapshot(_fresh_checkout(origin, main, tmp_path / "ref2", owner))
    assert (again.path / "pkg" / "mod.py").read_text() == "VALUE = 'original'\n"
    assert (again.path / "pkg1" / "x.py").read_text() == "WHO = 'one'\n"
    assert sorted(os.listdir(outside)) == ["canary"]
    assert (outside / "canary").read_text() == "must survive"
    assert list(again.home.iterdir()) == []
    assert list(again.tmp.iterdir()) == []
    if owner is not None:
        for p in [again.path, *again.path.rglob("*"), again.home, again.tmp]:
            assert (p.lstat().st_uid, p.lstat().st_gid) == owner, p
    assert otto_git(again, "status", "--porcelain", "--ignored", "--untracked-files=all") == ""
    assert git(again.path, "-c", "safe.directory=*", "status", "--porcelain") == ""  # the sandbox's .git too
    with contextlib.suppress(OSError):
        assert _dir_flags(again.path / "pkg2") & 0x80 == 0


def test_a_reset_keeps_what_nobody_touched_and_rewrites_what_changed(ws: Workspace, origin: Origin) -> None:
    _rich(origin)
    wt = _task(ws, origin, "t1")
    inode = {p: (wt.path / p).lstat().st_ino for p in ("pkg1/x.py", "docs/guide.md", "edited.txt", "app.py")}
    (wt.path / "app.py").write_text("the agent's change\n")
    ws.remove_worktree(wt)
    _move_main(origin)
    again = _task(ws, origin, "t2")
    assert again.warm
    after = {p: (again.path / p).lstat().st_ino for p in inode}
    assert after["pkg1/x.py"] == inode["pkg1/x.py"]
    assert after["docs/guide.md"] == inode["docs/guide.md"]
    assert (again.path / "edited.txt").read_text() == "edited\n"
    assert (again.path / "app.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_merges_are_handed_over_and_reset_like_the_rest(origin: Origin, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing checkouts to another uid needs root")
    owner = (65534, 65534)
    ws = Workspace(
        tmp_path / "mirrors", tmp_path / "checkouts", owner=owner, sandbox_objects=None, pool_size=1
    )
    (origin.clone / "dep" / "inner").mkdir(parents=True)
    origin.human_commit("dep", "dep/inner/new.txt", "from a dependency\n")  # in new directories
    wt = _task(ws, origin, "t1", merge_branches=["dep"])
    assert (wt.path / "dep" / "inner" / "new.txt").read_text() == "from a dependency\n"
    for p in [wt.path, *wt.path.rglob("*")]:
        assert (p.lstat().st_uid, p.lstat().st_gid) == owner, p
    ws.remove_worktree(wt)
    again = _task(ws, origin, "t2")
    assert again.warm
    assert not (again.path / "dep").exists()
    assert _snapshot(again.path) == _snapshot(
        _fresh_checkout(origin, origin.sha("main") or "", tmp_path / "r", owner)
    )


def test_an_idle_checkout_already_at_the_commit_is_taken_first(ws: Workspace, origin: Origin) -> None:
    first = _task(ws, origin, "t1")
    second_main = origin.human_commit("main", "m.txt", "m\n")
    second = _task(ws, origin, "t2")
    assert (first.slot, second.slot) == (0, 1)
    assert second.start_sha == second_main
    ws.remove_worktree(first)
    ws.remove_worktree(second)
    again = _task(ws, origin, "t3")
    assert again.slot == 1
    assert again.warm


def test_prewarmed_checkouts_spare_the_first_tasks_a_checkout(ws: Workspace, origin: Origin) -> None:
    mirror = ws.sync_mirror("acme/demo", origin.url, None)
    assert ws.prewarm(mirror, "main", 5) == 2  # the pool keeps 2
    first, second = _task(ws, origin, "t1"), _task(ws, origin, "t2")
    assert first.warm
    assert second.warm
    assert {first.slot, second.slot} == {0, 1}
    assert ws.prewarm(mirror, "main", 2) == 0  # both busy: nothing built beyond the pool
    ws.remove_worktree(second)
    main = origin.human_commit("main", "m.txt", "m\n")
    ws.sync_mirror("acme/demo", origin.url, None)
    assert ws.prewarm(mirror, "main", 2) == 1
    third = _task(ws, origin, "t3")
    assert third.warm
    assert third.slot == second.slot
    assert third.start_sha == main
    assert (third.path / "m.txt").read_text() == "m\n"
    with pytest.raises(WorkspaceError, match="does not exist"):
        ws.prewarm(mirror, "nope", 1)


@pytest.mark.parametrize("damage", ["missing", "garbage", "another boot", "clock went back"])
def test_a_checkout_whose_certificate_cant_be_trusted_is_rebuilt(
    ws: Workspace, origin: Origin, damage: str
) -> None:
    wt = _task(ws, origin, "t1")
    (wt.path / "junk.txt").write_text("junk")
    cert = wt.git_dir / handover.CERTIFICATE
    body, _, header = cert.read_text().rpartition("\0\0")
    fields = json.loads(header)
    if damage == "missing":
        cert.unlink()
    elif damage == "garbage":
        cert.write_text("garbage")
    elif damage == "another boot":
        cert.write_text(body + "\0\0" + json.dumps(fields | {"boot_id": "not-this-boot"}))
    else:
        cert.write_text(body + "\0\0" + json.dumps(fields | {"real_ns": fields["real_ns"] + 3_600 * 10**9}))
    ws.remove_worktree(wt)
    again = _task(ws, origin, "t2")
    assert again.path == wt.path
    assert not again.warm
    assert not (again.path / "junk.txt").exists()
    assert otto_git(again, "status", "--porcelain", "--ignored", "--untracked-files=all") == ""


def test_find_and_the_python_walk_see_the_same(ws: Workspace, origin: Origin, tmp_path: Path) -> None:
    _rich(origin)
    wt = _task(ws, origin, "t1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("must survive")
    _leave_everything(wt, outside)
    cert = handover.read_certificate(wt.git_dir)
    assert cert is not None
    ref = handover.reference(wt.git_dir, cert)
    owner, mode = (os.geteuid(), os.getegid()), 0o777 & ~handover.umask()
    by_find = handover.scan(wt.path, cert, ref, owner, mode)
    by_python = handover.scan(wt.path, cert, ref, owner, mode, use_find=False)
    assert sorted(by_find.touched) == sorted(by_python.touched)
    assert by_find.files == by_python.files
    assert by_find.dirs == by_python.dirs
    touched = {p for p, _kind in by_find.touched}
    assert {"", "fifo", "sock", "junk", "pkg/mod.py", "pkg1", "pkg2", "docs", "hardlink", "app.py"} <= touched
    assert "pkg1/x.py" in by_find.files
    assert "pkg/__init__.py" in by_find.files
    assert sorted(handover.walk(wt.path), key=str) == sorted(handover.walk(wt.path, use_find=False), key=str)


def _cert(inodes: dict[str, int]) -> handover.Certificate:
    return handover.Certificate("b" * 40, 100, "boot", 0, 0, inodes)


def test_the_reset_plan() -> None:
    target = handover.Target(
        files={
            "a.py": "100644",
            "d/b.py": "100644",
            "d/c.py": "100644",
            "link": "120000",
            "new.py": "100755",
        },
        dirs={"d", "sub"},
        gitlinks={"sub"},
    )
    found = handover.Scan(
        touched=[("", "d"), ("d/c.py", "f"), ("junk", "d"), ("junk/x", "f"), ("fifo", "p"), ("d", "d")],
        files={
            "a.py": ("f", 1),
            "d/b.py": ("f", 9),
            "link": ("f", 3),
            "old.py": ("f", 4),
            "junk/y": ("f", 5),
        },
        dirs={"gone", "gone/deeper"},
    )
    cert = _cert({"a.py": 1, "d/b.py": 2, "link": 3, "old.py": 4})
    plan = handover.plan_reset(found, cert, target, changed={"old.py", "new.py"})
    assert plan.kept == {"a.py": 1}  # untouched, same inode, same blob, right type
    assert plan.remove_trees == ["gone", "junk"]
    assert plan.restore_dirs == ["", "d"]
    # d/b.py is another inode than Otto left (a directory was swapped); link is a file where a symlink belongs
    assert plan.unlink == ["d/b.py", "d/c.py", "fifo", "link", "old.py"]
    assert plan.write == ["d/b.py", "d/c.py", "link", "new.py", "sub"]  # the gitlink's directory is missing
    assert plan.dirs == {"", "d"}


# --- commits --------------------------------------------------------------------------------------


def test_commit_identity_gitignore_and_nothing_to_commit(ws: Workspace, origin: Origin) -> None:
    wt = _task(ws, origin, "t1")
    assert ws.commit_all(wt, "nothing", BOT) is None
    (wt.path / "new.py").write_text("y = 2\n")
    (wt.path / "debug.log").write_text("ignored\n")
    (wt.path / "README.md").unlink()
    sha = ws.commit_all(wt, "Add new.py\n\nBody line.", BOT)
    assert sha is not None
    assert sha == ws.head_sha(wt)
    fmt = otto_git(wt, "log", "-1", "--format=%an|%ae|%cn|%ce|%B")
    assert fmt.startswith(f"{BOT.name}|{BOT.email}|{BOT.name}|{BOT.email}|Add new.py\n\nBody line.")
    files = otto_git(wt, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["A\tnew.py", "D\tREADME.md"]
    assert ws.commit_all(wt, "again", BOT) is None


def test_any_identity_object_works_and_is_validated(ws: Workspace, origin: Origin) -> None:
    @dataclass
    class Plain:
        name: str
        email: str

    wt = _task(ws, origin, "t1", author=Plain("otto[bot]", "1+otto[bot]@users.noreply.github.com"))
    (wt.path / "x").write_text("x")
    assert ws.commit_all(wt, "x", Plain("otto[bot]", "1+otto[bot]@users.noreply.github.com"))
    (wt.path / "y").write_text("y")
    with pytest.raises(WorkspaceError, match="identity"):
        ws.commit_all(wt, "y", Plain("evil\nname", "e@x"))
    with pytest.raises(ValueError, match="single line"):
        GitIdentity(name="a<b>", email="x@y")


def test_hooks_never_run(ws: Workspace, origin: Origin, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    mirror = ws.sync_mirror("acme/demo", origin.url, None)
    evil = tmp_path / "evil-hooks"
    evil.mkdir()
    for hooks_dir in (mirror / "hooks", evil):
        for hook in ("pre-commit", "commit-msg", "post-commit", "post-checkout", "post-merge", "pre-push"):
            path = hooks_dir / hook
            path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
            path.chmod(0o755)
    a = _task(ws, origin, "a")
    (a.path / "a.txt").write_text("a\n")
    ws.commit_all(a, "a", BOT)
    ws.push(a, origin.url, None, "otto/1/a", None)
    git(mirror, "config", "core.hooksPath", str(evil))  # as if the repository had managed to set it
    c = _task(ws, origin, "c")
    (c.path / "c.txt").write_text("c\n")
    ws.commit_all(c, "c", BOT)
    ws.push(c, origin.url, None, "otto/1/c", None)
    b = _task(ws, origin, "b", merge_branches=["otto/1/a", "otto/1/c"])
    (b.path / "b.txt").write_text("b\n")
    ws.commit_all(b, "b", BOT)
    ws.push(b, origin.url, None, "otto/1/b", None)
    assert not marker.exists(), marker.read_text()


def test_changed_files(ws: Workspace, origin: Origin) -> None:
    wt = _task(ws, origin, "t1")
    (wt.path / "added.py").write_text("a = 1\n")
    (wt.path / "app.py").write_text("def add(a, b):\n    return b + a\n")
    (wt.path / "README.md").unlink()
    ws.commit_all(wt, "one", BOT)
    (wt.path / "added.py").rename(wt.path / "renamed.py")
    ws.commit_all(wt, "two", BOT)
    origin.human_commit("main", "other.txt", "main moved on\n")  # not ours: excluded by the merge-base
    ws.sync_mirror("acme/demo", origin.url, None)
    changes = {(c.path, c.status, c.old_path) for c in ws.changed_files(wt, "main")}
    assert changes == {("renamed.py", "A", None), ("app.py", "M", None), ("README.md", "D", None)}
    (wt.path / "renamed.py").rename(wt.path / "moved.py")
    ws.commit_all(wt, "three", BOT)
    head1 = otto_git(wt, "rev-parse", "HEAD~1")
    assert [(c.path, c.status, c.old_path) for c in ws.changed_files(wt, head1)] == [
        ("moved.py", "R", "renamed.py")
    ]
    with pytest.raises(WorkspaceError):
        ws.changed_files(wt, "no-such-branch")


# --- push -----------------------------------------------------------------------------------------


def test_push_with_lease_rejected_when_remote_moved(ws: Workspace, origin: Origin) -> None:
    wt = _task(ws, origin, "t1")
    (wt.path / "x.py").write_text("x = 1\n")
    sha1 = ws.commit_all(wt, "mine", BOT)
    assert ws.push(wt, origin.url, None, "otto/1/t1", None) == sha1
    assert ws.remote_branch_sha(wt.mirror, "otto/1/t1") == sha1  # the mirror knows what we pushed

    theirs = origin.human_commit("otto/1/t1", "human.txt", "someone else\n", start="otto/1/t1")
    (wt.path / "x.py").write_text("x = 2\n")
    ws.commit_all(wt, "mine again", BOT)
    with pytest.raises(PushRejected, match="otto/1/t1"):
        ws.push(wt, origin.url, None, "otto/1/t1", sha1)
    assert origin.sha("otto/1/t1") == theirs
    with pytest.raises(PushRejected):  # a plain push never overwrites either
        ws.push(wt, origin.url, None, "otto/1/t1", None)
    assert origin.sha("otto/1/t1") == theirs

    # With the right lease the (non-fast-forward) push goes through.
    assert ws.push(wt, origin.url, None, "otto/1/t1", theirs) == ws.head_sha(wt)
    assert origin.sha("otto/1/t1") == ws.head_sha(wt)


def test_push_failure_that_is_not_a_rejection(ws: Workspace, origin: Origin, tmp_path: Path) -> None:
    wt = _task(ws, origin, "t1")
    with pytest.raises(WorkspaceError) as info:
        ws.push(wt, str(tmp_path / "missing.git"), None, "otto/1/t1", None)
    assert not isinstance(info.value, PushRejected)


# --- the token ------------------------------------------------------------------------------------


def _all_bytes_under(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    yield p, p.read_bytes()


def test_token_never_lands_on_disk(ws: Workspace, origin: Origin) -> None:
    mirror = ws.sync_mirror("acme/demo", origin.url, TOKEN)
    wt = ws.create_worktree(mirror, "t1", "main", [], None, BOT)
    (wt.path / "x.py").write_text("x = 1\n")
    ws.commit_all(wt, "x", BOT)
    ws.push(wt, origin.url, TOKEN, "otto/1/t1", None)
    ws.sync_mirror("acme/demo", origin.url, TOKEN)
    needles = [TOKEN.encode(), base64.b64encode(f"x-access-token:{TOKEN}".encode()), b"extraheader"]
    for path, data in _all_bytes_under(ws.mirrors.mirrors_dir, ws.checkouts_dir, origin.path):
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path}"


def test_remote_invocation_carries_the_header_outside_argv() -> None:
    args, env = remote_invocation(TOKEN)
    assert "credential.helper=" in args
    assert not any(TOKEN in a or "AUTHORIZATION" in a for a in args)
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == "http.extraheader"
    value = env["GIT_CONFIG_VALUE_0"]
    assert value == auth_header(TOKEN)
    scheme, encoded = value.split(": ", 1)[1].split(" ", 1)
    assert scheme == "basic"
    assert base64.b64decode(encoded).decode() == f"x-access-token:{TOKEN}"
    assert remote_invocation(None)[1] == {}


def test_errors_are_redacted(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError) as info:
        ws.sync_mirror("acme/demo", "http://127.0.0.1:9/x.git", TOKEN)
    message = str(info.value)
    assert "fetch" in message
    assert "127.0.0.1" in message
    assert TOKEN not in message
    assert base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() not in message


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        body = f"no repo here; you sent {self.headers.get('Authorization')}".encode()
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_git_sends_the_header_over_http_and_errors_stay_redacted(ws: Workspace) -> None:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/acme/demo.git"
        with pytest.raises(WorkspaceError) as info:
            ws.sync_mirror("acme/demo", url, TOKEN)
    finally:
        server.shutdown()
        server.server_close()
    expected = "basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert _Recorder.seen
    assert all(h is not None and h.lower() == expected.lower() for h in _Recorder.seen)
    assert TOKEN not in str(info.value)
    assert expected.split()[1] not in str(info.value)
