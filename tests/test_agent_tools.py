"""The agent's tools: path confinement, the text editor tool, the command tool."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from app.agent.tools import CommandTool, EditorTool
from app.domain.paths import PathEscape, resolve_inside
from app.sandbox import Sandbox
from app.sandbox.proc import run_bounded
from tests.sandboxing import make_mounts, make_sandbox


@pytest.fixture
def root(tmp_path: Path) -> Path:
    repo = tmp_path / "wt"
    repo.mkdir()
    subprocess.run(
        ["git", "init", "-q", str(repo)], check=True, env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull}
    )
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "README.md").write_text("# demo\n")
    return repo


# --- resolve_inside -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "../outside.txt",
        "src/../../outside.txt",
        "/etc/passwd",
        "/",
        ".git/config",
        ".git",
        "src/../.git/HEAD",
        "sub/.GIT/config",
        "bad\x00name",
    ],
)
def test_resolve_inside_refuses(root: Path, bad: str) -> None:
    with pytest.raises(PathEscape):
        resolve_inside(root, bad)


def test_resolve_inside_refuses_symlinks_out(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (root / "etc_link").symlink_to("/etc")
    (root / "secret_link").symlink_to(secret)
    (root / "src" / "up").symlink_to("../..")
    (root / "git_link").symlink_to(root / ".git")
    for bad in ["etc_link", "etc_link/passwd", "secret_link", "src/up/secret.txt", "git_link/config"]:
        with pytest.raises(PathEscape):
            resolve_inside(root, bad)
    # An absolute path through a link inside root is checked the same way.
    with pytest.raises(PathEscape):
        resolve_inside(root, str(root / "etc_link" / "passwd"))


def test_resolve_inside_accepts(root: Path) -> None:
    real = Path(os.path.realpath(root))
    (root / "docs").symlink_to("src")  # a symlink that stays inside is followed
    assert resolve_inside(root, "src/app.py") == real / "src" / "app.py"
    assert resolve_inside(root, "./src/../README.md") == real / "README.md"
    assert resolve_inside(root, "") == real
    assert resolve_inside(root, ".") == real
    assert resolve_inside(root, str(root / "src" / "app.py")) == real / "src" / "app.py"
    assert resolve_inside(root, "docs/app.py") == real / "src" / "app.py"
    assert resolve_inside(root, "new/dir/file.txt") == real / "new" / "dir" / "file.txt"
    assert resolve_inside(root, ".github/workflows/ci.yml") == real / ".github" / "workflows" / "ci.yml"
    assert resolve_inside(root, ".gitignore") == real / ".gitignore"


def test_resolve_inside_alias(root: Path) -> None:
    real = Path(os.path.realpath(root))
    assert resolve_inside(root, "/repo/src/app.py", alias="/repo") == real / "src" / "app.py"
    assert resolve_inside(root, "/repo", alias="/repo") == real
    with pytest.raises(PathEscape):
        resolve_inside(root, "/repo/../etc/passwd", alias="/repo")
    with pytest.raises(PathEscape):
        resolve_inside(root, "/repository/x", alias="/repo")
    with pytest.raises(PathEscape):
        resolve_inside(root, "/repo/src/app.py")  # no alias configured: absolute and outside


# --- EditorTool ---------------------------------------------------------------------------------------------


def test_view_file_and_range(root: Path) -> None:
    (root / "f.txt").write_text("one\ntwo\nthree\nfour\n")
    tool = EditorTool(root)
    out = tool.handle({"command": "view", "path": "f.txt"})
    assert not out.is_error
    assert "     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour\n" in out.content
    assert str(root) not in out.content  # the host path is never shown
    out = tool.handle({"command": "view", "path": "f.txt", "view_range": [2, 3]})
    assert "     2\ttwo\n     3\tthree\n" in out.content
    assert "one" not in out.content
    assert "four" not in out.content
    out = tool.handle({"command": "view", "path": "f.txt", "view_range": [3, -1]})
    assert "     3\tthree\n     4\tfour\n" in out.content
    assert "two" not in out.content
    for bad in ([0, 2], [3, 2], [1, 9], [1], "1-2"):
        out = tool.handle({"command": "view", "path": "f.txt", "view_range": bad})
        assert out.is_error, bad


def test_view_directory_two_levels_without_hidden(root: Path) -> None:
    (root / "src" / "pkg" / "deep").mkdir(parents=True)
    (root / "src" / "pkg" / "deep" / "x.py").write_text("")
    (root / ".hidden").write_text("")
    (root / "src" / ".secret").write_text("")
    out = EditorTool(root).handle({"command": "view", "path": "."})
    assert not out.is_error
    assert "src/app.py" in out.content
    assert "README.md" in out.content
    assert "src/pkg/" in out.content
    assert "src/pkg/deep" not in out.content  # third level
    assert ".hidden" not in out.content
    assert ".secret" not in out.content
    assert ".git" not in out.content
    alias_out = EditorTool(root, alias="/repo").handle({"command": "view", "path": "/repo/src"})
    assert "/repo/src/app.py" in alias_out.content


def test_create(root: Path) -> None:
    tool = EditorTool(root)
    out = tool.handle({"command": "create", "path": "pkg/sub/new.py", "file_text": "x = 1\n"})
    assert not out.is_error
    assert "created" in out.content
    assert (root / "pkg" / "sub" / "new.py").read_text() == "x = 1\n"
    out = tool.handle({"command": "create", "path": "pkg/sub/new.py", "file_text": "x = 2\n"})
    assert not out.is_error
    assert "overwritten" in out.content
    assert (root / "pkg" / "sub" / "new.py").read_text() == "x = 2\n"
    assert tool.handle({"command": "create", "path": "src", "file_text": ""}).is_error
    assert tool.handle({"command": "create", "path": "x.py"}).is_error  # file_text missing


def test_str_replace(root: Path) -> None:
    tool = EditorTool(root)
    out = tool.handle(
        {"command": "str_replace", "path": "src/app.py", "old_str": "a + b", "new_str": "b + a"}
    )
    assert not out.is_error, out.content
    assert (root / "src" / "app.py").read_text() == "def add(a, b):\n    return b + a\n"
    assert "     2\t    return b + a" in out.content

    out = tool.handle({"command": "str_replace", "path": "src/app.py", "old_str": "nope", "new_str": "x"})
    assert out.is_error
    assert "did not appear verbatim" in out.content

    (root / "dup.py").write_text("x = 1\ny = 2\nx = 1\n")
    out = tool.handle({"command": "str_replace", "path": "dup.py", "old_str": "x = 1", "new_str": "x = 3"})
    assert out.is_error
    assert "(2)" in out.content
    assert "[1, 3]" in out.content
    assert (root / "dup.py").read_text() == "x = 1\ny = 2\nx = 1\n"

    out = tool.handle({"command": "str_replace", "path": "dup.py", "old_str": "y = 2\n"})  # new_str omitted
    assert not out.is_error
    assert (root / "dup.py").read_text() == "x = 1\nx = 1\n"


def test_str_replace_preserves_crlf(root: Path) -> None:
    (root / "win.txt").write_bytes(b"a\r\nb\r\n")
    out = EditorTool(root).handle(
        {"command": "str_replace", "path": "win.txt", "old_str": "b", "new_str": "c"}
    )
    assert not out.is_error
    assert (root / "win.txt").read_bytes() == b"a\r\nc\r\n"


def test_insert(root: Path) -> None:
    tool = EditorTool(root)
    (root / "f.txt").write_text("one\ntwo\n")
    assert not tool.handle(
        {"command": "insert", "path": "f.txt", "insert_line": 0, "insert_text": "zero"}
    ).is_error
    assert (root / "f.txt").read_text() == "zero\none\ntwo\n"
    assert not tool.handle(
        {"command": "insert", "path": "f.txt", "insert_line": 2, "insert_text": "1.5\n"}
    ).is_error
    assert (root / "f.txt").read_text() == "zero\none\n1.5\ntwo\n"
    assert not tool.handle(
        {"command": "insert", "path": "f.txt", "insert_line": 4, "insert_text": "end"}
    ).is_error
    assert (root / "f.txt").read_text() == "zero\none\n1.5\ntwo\nend\n"
    out = tool.handle({"command": "insert", "path": "f.txt", "insert_line": 9, "insert_text": "x"})
    assert out.is_error
    assert "[0, 5]" in out.content
    (root / "nonl.txt").write_text("a\nb")
    assert not tool.handle(
        {"command": "insert", "path": "nonl.txt", "insert_line": 2, "insert_text": "c"}
    ).is_error
    assert (root / "nonl.txt").read_text() == "a\nb\nc"
    (root / "empty.txt").write_text("")
    assert not tool.handle(
        {"command": "insert", "path": "empty.txt", "insert_line": 0, "insert_text": "x"}
    ).is_error
    assert (root / "empty.txt").read_text() == "x\n"


def test_editor_errors_are_outcomes(root: Path, tmp_path: Path) -> None:
    tool = EditorTool(root)
    (root / "etc_link").symlink_to("/etc")
    for tool_input in [
        {"command": "view", "path": "../"},
        {"command": "view", "path": "/etc/passwd"},
        {"command": "view", "path": "etc_link/passwd"},
        {"command": "view", "path": ".git/config"},
        {"command": "create", "path": ".git/hooks/pre-commit", "file_text": "#!/bin/sh\n"},
        {"command": "create", "path": "../escape.txt", "file_text": "x"},
        {"command": "str_replace", "path": "/etc/hostname", "old_str": "a", "new_str": "b"},
        {"command": "view", "path": "missing.txt"},
        {"command": "undo_edit", "path": "src/app.py"},
        {"command": "explode", "path": "src/app.py"},
        {"command": "view"},
    ]:
        out = tool.handle(tool_input)
        assert out.is_error, tool_input
        assert out.content.startswith("Error: ")
    assert not (tmp_path / "escape.txt").exists()
    assert not (root / ".git" / "hooks" / "pre-commit").exists()
    (root / "bin.dat").write_bytes(b"\x00\x01\x02")
    assert tool.handle({"command": "view", "path": "bin.dat"}).is_error


def test_editor_output_is_bounded(root: Path) -> None:
    (root / "big.txt").write_text("".join(f"line {i}\n" for i in range(20_000)))
    out = EditorTool(root, output_limit=2000).handle({"command": "view", "path": "big.txt"})
    assert not out.is_error
    assert len(out.content.encode()) <= 2000
    assert "bytes omitted" in out.content
    assert "line 19999" in out.content


# --- CommandTool --------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path)


def shell(
    sandbox: Sandbox, root: Path, timeout_s: float = 10, limit: int = 10_000, **env: str
) -> CommandTool:
    return CommandTool(sandbox, make_mounts(sandbox, root), timeout_s, limit, env)


def _running(marker: str, within: float = 10.0) -> list[int]:
    """Host pids whose command line contains ``marker``, once they are gone or after ``within`` seconds: a
    SIGKILLed process leaves /proc a moment after the kill (bwrap reports the exit before the kernel has
    torn the PID namespace down), so this waits for that event rather than looking once."""
    deadline = time.monotonic() + within
    while (found := _running_now(marker)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def _running_now(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if marker in cmdline and _alive(int(d.name)):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def test_command_runs_in_the_workspace(sandbox: Sandbox, root: Path) -> None:
    out = shell(sandbox, root).run("pwd; ls; echo err >&2; exit 3")
    assert not out.is_error
    assert "/workspace\n" in out.content
    assert "README.md" in out.content
    assert "src" in out.content
    assert "err" in out.content
    assert out.content.endswith("[exit code: 3]")
    out = shell(sandbox, root).handle({"command": "cat; echo done"})
    assert "done" in out.content  # stdin is closed: cat does not wait


def test_command_timeout_kills_everything(sandbox: Sandbox, root: Path) -> None:
    started = time.monotonic()
    out = shell(sandbox, root, timeout_s=0.5).run("sleep 31.4159 & echo started; sleep 30")
    assert time.monotonic() - started < 5
    assert out.is_error
    assert "started" in out.content
    assert "timed out after 0.5s" in out.content
    assert _running("31.4159") == []


def test_command_background_leftovers_are_killed_on_exit(sandbox: Sandbox, root: Path) -> None:
    started = time.monotonic()
    out = shell(sandbox, root, timeout_s=20).run(
        "sleep 27.1828 & setsid sleep 27.1828 </dev/null >/dev/null 2>&1 & nohup sleep 27.1828 & echo hi"
    )
    assert time.monotonic() - started < 5
    assert "hi" in out.content
    assert "[exit code: 0]" in out.content
    assert _running("27.1828") == []  # not one survived, not even the setsid'd daemon


def test_command_environment_is_built_from_scratch(
    sandbox: Sandbox, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "OTTO_WEBHOOK_SECRET": "whsec-value-1234",
        "ANTHROPIC_API_KEY": "sk-ant-value-5678",
        "GITHUB_TOKEN": "ghs_value9012",
        "AWS_SECRET_ACCESS_KEY": "aws-value-3456",
        "MY_PASSWORD": "pw-value-7890",
    }
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    out = shell(sandbox, root, limit=100_000, FOO="bar").run("env; cat /proc/*/environ | tr '\\0' '\\n'")
    for k, v in secrets.items():
        assert k not in out.content
        assert v not in out.content
    env = dict(
        line.split("=", 1) for line in out.content.splitlines() if re.match(r"^[A-Z_][A-Z0-9_]*=", line)
    )
    assert env["FOO"] == "bar"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["TERM"] == "dumb"
    assert env["NO_COLOR"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/home/sandbox"
    assert env["TMPDIR"] == "/tmp"
    allowed = {
        "PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "USER", "TERM", "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED", "GIT_CONFIG_NOSYSTEM", "GIT_TERMINAL_PROMPT", "CI", "NO_COLOR", "FORCE_COLOR",
        "PY_COLORS", "CLICOLOR", "CLICOLOR_FORCE", "PAGER", "GIT_PAGER", "FOO",
        "PWD", "SHLVL", "_", "OLDPWD",  # set by bash itself
    }  # fmt: skip
    assert set(env) <= allowed, set(env) - allowed


def test_command_output_is_bounded_with_exact_count(sandbox: Sandbox, root: Path) -> None:
    out = shell(sandbox, root, limit=1000).run("head -c 1000000 /dev/zero | tr '\\0' 'x'; echo")
    assert len(out.content.encode()) < 1100
    m = re.search(r"\[(\d+) bytes omitted\]", out.content)
    assert m is not None
    shown = out.content[: out.content.rindex("[exit code")].replace(m.group(0), "")
    assert int(m.group(1)) + shown.count("x") == 1_000_000


def test_run_bounded_reports_spawn_failure(tmp_path: Path) -> None:
    result = run_bounded(["/nonexistent/binary"], cwd=tmp_path, env={}, timeout_s=5, output_limit=100)
    assert result.exit_code == 127
    assert "could not start" in result.output


def test_command_output_closed_but_process_running_still_times_out(sandbox: Sandbox, root: Path) -> None:
    started = time.monotonic()
    out = shell(sandbox, root, timeout_s=0.5, limit=1000).run("exec >/dev/null 2>&1; sleep 30")
    assert time.monotonic() - started < 5
    assert out.is_error
    assert "timed out" in out.content
