"""Running one process with a timeout and bounded output; the sandbox (``app.sandbox.runner``) builds on it.

- The process runs in a new session (``setsid``), so it and everything it starts form one process group;
  on timeout, and when the main process exits, the whole group is killed with SIGKILL. (Inside the sandbox
  the PID namespace does the same for processes that leave the group.)
- stdin is ``/dev/null``; stdout and stderr are one interleaved pipe, kept head + tail within the limit
  while streaming (memory stays bounded whatever the command prints), and made plain text (no colour or
  cursor escapes: ``app.domain.terminal``).
- The environment is exactly the one given: nothing of Otto's own environment is inherited.
- Every command running is known (its process group): :func:`kill_running` ends them all at once, for a
  process shutting down after its activities were cancelled (their threads then return at once).
- Commands started inside a :func:`command_scope` (one task attempt) can be ended together:
  :meth:`CommandScope.cancel` kills the ones running and refuses any started after it. The scope travels
  in a context variable, which ``asyncio.to_thread`` carries into the threads that run the commands.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.domain.logs import HeadTailBuffer
from app.domain.terminal import plain_text

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
    note: str = ""  # why the sandbox ended it, when a limit did (memory, processes)


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (so its process group id stays ours)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


_running: set[int] = set()  # process groups of the commands running now
_running_lock = threading.Lock()


def kill_running() -> int:
    """SIGKILL every command running now (each one's process group); returns how many. For shutdown only:
    the commands' callers see them killed (exit code -9), so call this once nobody waits for their results."""
    with _running_lock:
        groups = list(_running)
    for pgid in groups:
        _kill_group(pgid)
    return len(groups)


class CommandScope:
    """The commands of one piece of work (a task attempt), to be ended together when it is stopped."""

    def __init__(self) -> None:
        self._groups: set[int] = set()
        self._lock = threading.Lock()
        self.cancelled = False

    def enter(self, pgid: int) -> bool:
        """Track a command just started; False (and the command killed) when the scope was cancelled."""
        with self._lock:
            if not self.cancelled:
                self._groups.add(pgid)
                return True
        _kill_group(pgid)
        return False

    def leave(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)

    def cancel(self) -> int:
        """Kill every command of the scope running now and refuse new ones; returns how many were killed."""
        with self._lock:
            self.cancelled = True
            groups = list(self._groups)
        for pgid in groups:
            _kill_group(pgid)
        return len(groups)


_scope: contextvars.ContextVar[CommandScope | None] = contextvars.ContextVar(
    "otto_command_scope", default=None
)


@contextlib.contextmanager
def command_scope() -> Iterator[CommandScope]:
    """Commands started in this context (and threads started from it with ``asyncio.to_thread``) belong to
    the scope yielded."""
    scope = CommandScope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def _cancelled(started: float) -> ProcResult:
    return ProcResult(
        exit_code=-signal.SIGKILL,
        timed_out=False,
        output="",
        output_bytes=0,
        duration_s=time.monotonic() - started,
        note="stopped: the run was stopped",
    )


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_limit: int,
    preexec_fn: Callable[[], None] | None = None,
) -> ProcResult:
    """Run ``argv`` in ``cwd`` with exactly ``env``; see the module docstring for the guarantees.

    ``preexec_fn`` runs in the child before ``exec`` (the sandbox joins its cgroup, sets rlimits and drops
    privileges there)."""
    started = time.monotonic()
    buf = HeadTailBuffer(output_limit)
    scope = _scope.get()
    if scope is not None and scope.cancelled:
        return _cancelled(started)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    except OSError as exc:
        return ProcResult(
            exit_code=127,
            timed_out=False,
            output=f"could not start {argv[0]!r}: {exc.strerror or exc}",
            output_bytes=0,
            duration_s=time.monotonic() - started,
        )
    with _running_lock:
        _running.add(proc.pid)
    if scope is not None:
        scope.enter(proc.pid)  # a scope cancelled meanwhile kills the command at once
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
            with _running_lock:
                _running.discard(proc.pid)
            if scope is not None:
                scope.leave(proc.pid)
            proc.stdout.close()
            with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL'd processes exit
                proc.wait(timeout=10)
    return ProcResult(
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        output=plain_text(buf.text()),
        output_bytes=buf.total,
        duration_s=time.monotonic() - started,
        note="stopped: the run was stopped" if scope is not None and scope.cancelled else "",
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
