"""Git workspaces against real repositories: a bare "origin" on disk stands in for GitHub."""

from __future__ import annotations

import base64
import os
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
