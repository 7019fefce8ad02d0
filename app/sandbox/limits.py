"""Resource limits for one sandboxed command: a cgroup where Otto may create one, rlimits always.

- **cgroup** (per command): ``pids.max`` bounds the number of processes (a fork bomb stops there) and the
  memory limit bounds the whole process tree (a memory hog is OOM-killed inside its group, nothing else
  is). cgroup v2 needs a delegated subtree (Otto's own cgroup writable, with the ``memory`` and ``pids``
  controllers); cgroup v1 needs write access to the ``pids`` and ``memory`` hierarchies (usually root).
  Where neither is possible, :func:`open_cgroup` returns None and only the rlimits apply.
- **rlimits** (per process, inherited by every child): address space (the memory limit, when no cgroup
  bounds memory), CPU seconds, the largest file a command may write, open files, no core dumps, and a
  process count per user (``RLIMIT_NPROC``; the kernel counts every process of the sandbox's uid).

Everything here runs in Otto's process except :func:`child_setup`, which runs in the forked child just
before ``exec`` and only makes plain system calls.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096
    pids: int = 512
    cpu_s: int = 1800
    file_size_mb: int = 2048
    open_files: int = 4096


class Cgroup:
    """One cgroup (v1: a group in each of the pids and memory hierarchies; v2: one group)."""

    def __init__(self, dirs: dict[str, Path], version: int) -> None:
        self.dirs = dirs  # controller ("pids", "memory", or "unified") → directory
        self.version = version

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError):
                found |= {int(x) for x in f.read_text().split()}
        return found

    def kill_all(self) -> None:
        """SIGKILL every process still in the group (a second line of defence after the PID namespace)."""
        if self.version == 2:
            kill = self.dirs["unified"] / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
                    return
        for _ in range(3):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def memory_exceeded(self) -> bool:
        """Whether the memory limit was hit (an allocation failed or the OOM killer ran) in this group."""
        if self.version == 2:
            events = _read_kv(self.dirs["unified"] / "memory.events")
            return events.get("oom_kill", 0) > 0 or events.get("max", 0) > 0
        mem = self.dirs["memory"]
        return (
            _read_int(mem / "memory.failcnt") > 0
            or _read_kv(mem / "memory.oom_control").get("oom_kill", 0) > 0
        )

    def pids_exceeded(self) -> bool:
        key = "unified" if self.version == 2 else "pids"
        return _read_kv(self.dirs[key] / "pids.events").get("max", 0) > 0

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                d.rmdir()


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _read_kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def _own_cgroups() -> dict[str, str]:
    """``/proc/self/cgroup`` as controller → path ("" is the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


def _chown_procs(d: Path, uid: int | None, gid: int | None) -> None:
    if uid is None:
        return
    for name in ("cgroup.procs", "tasks"):
        with contextlib.suppress(FileNotFoundError):
            os.chown(d / name, uid, gid if gid is not None else -1)


def open_cgroup(limits: Limits, uid: int | None = None, gid: int | None = None) -> Cgroup | None:
    """A fresh cgroup with ``limits`` applied, joinable by ``uid``; None where Otto may not create one."""
    name = f"otto-sandbox-{uuid.uuid4().hex[:12]}"
    own = _own_cgroups()
    v1_pids, v1_mem = CGROUP_ROOT / "pids", CGROUP_ROOT / "memory"
    created: list[Path] = []
    try:
        if "pids" in own and "memory" in own and v1_pids.is_dir() and v1_mem.is_dir():
            pids_dir = v1_pids / own["pids"].lstrip("/") / name
            mem_dir = v1_mem / own["memory"].lstrip("/") / name
            for d in (pids_dir, mem_dir):
                d.mkdir()
                created.append(d)
            (pids_dir / "pids.max").write_text(str(limits.pids))
            (mem_dir / "memory.limit_in_bytes").write_text(str(limits.memory_mb * _MIB))
            with contextlib.suppress(OSError):  # swap accounting may be off
                (mem_dir / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_mb * _MIB))
            for d in created:
                _chown_procs(d, uid, gid)
            return Cgroup({"pids": pids_dir, "memory": mem_dir}, version=1)
        if "" in own and (CGROUP_ROOT / "cgroup.controllers").is_file():
            parent = CGROUP_ROOT / own[""].lstrip("/")
            enabled = set((parent / "cgroup.subtree_control").read_text().split())
            if not {"pids", "memory"} <= enabled:
                return None
            d = parent / name
            d.mkdir()
            created.append(d)
            (d / "pids.max").write_text(str(limits.pids))
            (d / "memory.max").write_text(str(limits.memory_mb * _MIB))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
            _chown_procs(d, uid, gid)
            return Cgroup({"unified": d}, version=2)
    except OSError:
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        return None
    return None


def child_setup(
    limits: Limits,
    *,
    cgroup: Cgroup | None,
    uid: int | None,
    gid: int | None,
    nproc_base: int,
) -> Callable[[], None]:
    """What the forked child does before ``exec``: join the cgroup, set rlimits, drop to ``uid``/``gid``.

    Only system calls, no Python-level locks (it runs between fork and exec in a threaded process).
    """
    procs = [str(p) for p in cgroup.procs_files] if cgroup is not None else []
    memory_by_cgroup = cgroup is not None
    mem = limits.memory_mb * _MIB
    nproc = nproc_base + limits.pids

    def setup() -> None:
        pid = str(os.getpid()).encode()
        for p in procs:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if not memory_by_cgroup:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        size = limits.file_size_mb * _MIB
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)

    return setup
