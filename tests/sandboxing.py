"""A real sandbox for tests of commands (bubblewrap, the tests' toolchain, limits small enough to hit)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from app.dev.local import LocalWorld
from app.sandbox import ALWAYS_MASKED, Limits, Mounts, Sandbox, SandboxConfig
from app.sandbox.runner import find_bwrap

NOBODY = 65534


TMP = Path(tempfile.gettempdir())


def traversable(path: Path, below: Path = TMP) -> None:
    """Let other uids pass through ``path`` and its parents below ``below`` (pytest makes them 0700): Otto
    runs sandboxed commands as an unprivileged uid, for which bubblewrap binds directories by path."""
    for d in [path, *path.parents]:
        if d == below or d == Path("/"):
            break
        d.chmod(d.stat().st_mode | 0o711)


def make_sandbox(tmp_path: Path, *, masks: tuple[Path, ...] = (), **limits: Any) -> Sandbox:
    traversable(tmp_path)
    root = os.geteuid() == 0
    sandbox = Sandbox(
        SandboxConfig(
            bwrap_path=find_bwrap(None),
            tools=tuple(LocalWorld.sandbox_tools),
            limits=Limits(**limits),
            masks=(*masks, *(Path(p) for p in ALWAYS_MASKED)),
            uid=NOBODY if root else None,
            gid=NOBODY if root else None,
            uid_explicit=True,
            probe_dir=tmp_path / "probe",
        )
    )
    sandbox.ensure_available()
    return sandbox


def make_mounts(sandbox: Sandbox, workdir: Path) -> Mounts:
    """HOME and /tmp beside ``workdir``, all owned by the sandbox's uid."""
    home, tmp = workdir.parent / f"{workdir.name}.home", workdir.parent / f"{workdir.name}.tmp"
    for d in (workdir, home, tmp):
        d.mkdir(exist_ok=True)
        if sandbox.owner:
            for p in [d, *d.rglob("*")]:
                os.lchown(p, *sandbox.owner)
    return Mounts(workdir, home, tmp)


class Registry(ThreadingHTTPServer):
    """A stand-in package registry on loopback that answers every GET and records its path."""

    paths: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Answer(BaseHTTPRequestHandler):
    server: Registry

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = b"hello from the registry"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def running_registry() -> Iterator[Registry]:
    server = Registry(("127.0.0.1", 0), _Answer)
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
