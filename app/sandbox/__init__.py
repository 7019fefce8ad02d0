"""The sandbox every untrusted command runs in (bubblewrap), its limits and its egress proxy."""

from __future__ import annotations

import os
from pathlib import Path

from app.sandbox.egress import EgressProxy
from app.sandbox.limits import Limits
from app.sandbox.proc import ProcResult
from app.sandbox.runner import Mounts, Sandbox, SandboxConfig, SandboxUnavailable
from app.settings import Settings

NOBODY = 65534
# Host files no command needs and none may read, even where the system is visible.
ALWAYS_MASKED = (
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/otto",
)


def sandbox_config(settings: Settings) -> SandboxConfig:
    uid, gid = settings.sandbox_uid, settings.sandbox_gid
    if uid is None and os.geteuid() == 0:
        uid, gid = NOBODY, NOBODY  # never run the repository's code as root, even a namespaced one
    return SandboxConfig(
        mode=settings.sandbox,
        bwrap_path=settings.sandbox_bwrap_path,
        limits=Limits(
            memory_mb=settings.sandbox_memory_mb,
            pids=settings.sandbox_pids,
            cpu_s=settings.sandbox_cpu_s,
            file_size_mb=settings.sandbox_file_size_mb,
        ),
        tools=tuple(settings.sandbox_tools),
        masks=(*settings.sensitive_paths(), *(Path(p) for p in ALWAYS_MASKED)),
        uid=uid,
        gid=gid if gid is not None else uid,
        uid_explicit=settings.sandbox_uid is not None,
        probe_dir=settings.checkouts_dir,
    )


def sandbox_from_settings(settings: Settings) -> Sandbox:
    egress = EgressProxy(settings.data_dir / "egress", settings.sandbox_egress_allow)
    return Sandbox(sandbox_config(settings), egress)


__all__ = [
    "ALWAYS_MASKED",
    "Limits",
    "Mounts",
    "ProcResult",
    "Sandbox",
    "SandboxConfig",
    "SandboxUnavailable",
    "sandbox_config",
    "sandbox_from_settings",
]
