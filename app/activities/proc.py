"""Running untrusted commands: own process group, scrubbed environment, timeout, bounded output.

Shared by the agent's command tool and the repository's checks (``verify``).

- The command runs in a new session (``setsid``), so it and everything it starts form one process group.
  On timeout the whole group is killed with SIGKILL. When the main process exits, whatever it left
  running in the background in that group is killed too (a command is not a way to start daemons). A
  process that deliberately leaves the group (its own ``setsid``) is not tracked: use a container or
  cgroup around the worker if that matters.
- stdin is ``/dev/null``; stdout and stderr are one interleaved pipe, kept head + tail within the limit
  while streaming (memory stays bounded whatever the command prints).
- The environment starts empty (see :func:`sandbox_env`): nothing from Otto's own environment leaks in
  except ``PATH``.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.domain.logs import HeadTailBuffer

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# After the main process exits (or is killed), how long to keep reading what is still in the pipe.
_DRAIN_S = 2.0
_POLL_S = 0.05


@dataclass(frozen=True)
class ProcResult:
    exit_code: int | None  # None when timed out; negative = killed by that signal
    timed_out: bool
    output: str  # stdout and stderr interleaved, bounded (head + tail)
    output_bytes: int  # everything the command printed, before bounding
    duration_s: float


def sandbox_dirs(root: Path) -> tuple[Path, Path]:
    """HOME and TMPDIR for commands run in ``root``: ``<root>.sandbox/{home,tmp}`` beside the worktree.

    Beside, not inside, so nothing there is ever committed; created on demand, removed together with the
    worktree by ``Workspace.remove_worktree``.
    """
    base = root.parent / f"{root.name}.sandbox"
    home, tmp = base / "home", base / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    return home, tmp


def sandbox_env(
    home: Path,
    tmpdir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A minimal environment for untrusted commands.

    Only ``PATH`` is taken from Otto's environment; nothing else (no ``OTTO_*``, ``ANTHROPIC_*``,
    ``GITHUB_*``, tokens, keys or secrets). ``extra_env`` is applied last and may override anything,
    including ``PATH``.
    """
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "CI": "true",  # test runners: no watch mode, no interactive prompts
        "NO_COLOR": "1",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
    }
    if extra_env:
        env.update(extra_env)
    return env


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (so its process group id stays ours)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_limit: int,
) -> ProcResult:
    """Run ``argv`` in ``cwd`` with exactly ``env``; see the module docstring for the guarantees."""
    started = time.monotonic()
    buf = HeadTailBuffer(output_limit)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ProcResult(
            exit_code=127,
            timed_out=False,
            output=f"could not start {argv[0]!r}: {exc.strerror or exc}",
            output_bytes=0,
            duration_s=time.monotonic() - started,
        )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = started + timeout_s
    timed_out = False
    finished = False
    eof = False
    drain_until = 0.0
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        try:
            while True:
                now = time.monotonic()
                if not finished:
                    if _exited(proc.pid):
                        finished = True
                    elif now >= deadline:
                        finished = timed_out = True
                    if finished:
                        _kill_group(proc.pid)  # the group: leftovers or, on timeout, everything
                        drain_until = now + _DRAIN_S
                if finished and (eof or now >= drain_until):
                    break
                if eof:  # output closed, process still running
                    time.sleep(min(_POLL_S, max(0.0, deadline - now)))
                    continue
                until = drain_until if finished else deadline
                for _key, _ in sel.select(timeout=min(_POLL_S * 2, max(0.0, until - now))):
                    chunk = os.read(fd, 65536)
                    if chunk:
                        buf.feed(chunk)
                    else:
                        eof = True
                        sel.unregister(fd)
        finally:
            _kill_group(proc.pid)
            proc.stdout.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL'd processes exit
                pass
    return ProcResult(
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        output=buf.text(),
        output_bytes=buf.total,
        duration_s=time.monotonic() - started,
    )


def run_shell(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_limit: int,
) -> ProcResult:
    """``bash -c command`` (no login shell, no rc files) via :func:`run_bounded`."""
    return run_bounded(
        ["bash", "-c", command], cwd=cwd, env=env, timeout_s=timeout_s, output_limit=output_limit
    )
