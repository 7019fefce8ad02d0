"""The bubblewrap command line for one sandboxed command (pure: paths in, argv out).

What the command sees:

- the system read-only: ``/usr`` and ``/etc`` bound read-only, ``/bin``, ``/lib``… as on the host (symlinks
  into ``/usr`` on merged-/usr systems, read-only binds otherwise); extra read-only directories (toolchains,
  the repository's git objects) at the paths the caller gives;
- its workspace read-write at :data:`WORKSPACE`, a private ``$HOME`` and ``/tmp`` (directories Otto throws
  away after the attempt), a fresh ``/proc`` of its own PID namespace and a minimal ``/dev``;
- nothing else: no other directory of the host exists inside, and sensitive paths that would fall inside a
  bound directory (a key file under ``/etc``, say) are masked by an empty file or directory;
- its own user, IPC, PID, network, UTS and cgroup namespaces: no process outside is visible or signalable,
  only a private loopback (the host's 127.0.0.1 services are unreachable), and no nested user namespaces;
- ``--die-with-parent`` and the PID namespace: when the command's main process exits or Otto kills the
  sandbox, every process inside is killed by the kernel. ``--new-session``: no terminal to inject into.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

WORKSPACE = "/workspace"
HOME = "/home/sandbox"
SANDBOX_UID = 1000  # the uid and gid commands see inside (mapped to the real sandbox uid outside)
SYSTEM_DIRS = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class BwrapSpec:
    workdir: Path
    home: Path
    tmp: Path
    argv: Sequence[str]
    ro_binds: Sequence[tuple[Path, str]] = ()  # (host path, path inside)
    rw_binds: Sequence[tuple[Path, str]] = ()
    masks: Sequence[Path] = ()  # host paths that must not be readable even if inside a bound directory
    system_dirs: Sequence[str] = SYSTEM_DIRS
    empty_file: Path = Path("/dev/null")  # what a masked file shows (an empty regular file, readable)
    extra_files: Sequence[tuple[int, str]] = field(default_factory=tuple)  # (fd, path inside), read-only


def _under(path: Path, roots: Sequence[str]) -> bool:
    return any(path == Path(r) or Path(r) in path.parents for r in roots)


def bwrap_argv(bwrap: str, spec: BwrapSpec) -> list[str]:
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "otto-sandbox",
        "--die-with-parent",
        "--new-session",
    ]
    for d in spec.system_dirs:
        if os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    # paths inside the sandbox's own mount namespace: its private /tmp is the attempt's directory
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run", "--tmpfs", "/var", "--dir", "/var/tmp"]  # noqa: S108
    argv += ["--bind", str(spec.tmp), "/tmp", "--bind", str(spec.home), HOME]  # noqa: S108
    argv += ["--bind", str(spec.workdir), WORKSPACE]
    for host, inside in spec.ro_binds:
        argv += ["--ro-bind", str(host), inside]
    for host, inside in spec.rw_binds:
        argv += ["--bind", str(host), inside]
    for fd, inside in spec.extra_files:
        argv += ["--ro-bind-data", str(fd), inside]
    bound = [*spec.system_dirs, *SYSTEM_LINKS, *(inside for _, inside in spec.ro_binds)]
    for mask in spec.masks:
        if not _under(mask, bound) or not (mask.exists() or mask.is_symlink()):
            continue
        if mask.is_dir() and not mask.is_symlink():
            argv += ["--tmpfs", str(mask), "--remount-ro", str(mask)]
        else:
            argv += ["--ro-bind", str(spec.empty_file), str(mask)]
    argv += ["--chdir", WORKSPACE, "--", *spec.argv]
    return argv
