"""The embedded Temporal dev server is supervised: one Otto per data dir, it dies with Otto, an orphan left
by a crashed Otto is ended, and its death while Otto runs is noticed. Real servers, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.engine import DataDirInUse, EmbeddedTemporal, _cmdline, temporal_cli


def _gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _cmdline(pid):
            return True
        time.sleep(0.1)
    return False


async def test_one_otto_per_data_dir(tmp_path: Path) -> None:
    first = EmbeddedTemporal(tmp_path)
    await first.start()
    try:
        with pytest.raises(DataDirInUse, match=str(os.getpid())):
            await EmbeddedTemporal(tmp_path).start()
        assert first.alive  # the refused second one changed nothing
    finally:
        first.stop()
    again = EmbeddedTemporal(tmp_path)  # stopped cleanly: the data dir is free again
    await again.start()
    again.stop()


def test_the_server_dies_with_otto_even_on_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from pathlib import Path
        from app.engine import EmbeddedTemporal
        t = EmbeddedTemporal(Path({str(tmp_path)!r}))
        asyncio.run(t.start())
        print(t.process.pid, flush=True)
        time.sleep(300)
        """
    )
    otto = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert otto.stdout is not None
    server_pid = int(otto.stdout.readline())
    assert "start-dev" in _cmdline(server_pid)
    otto.send_signal(signal.SIGKILL)
    otto.wait()
    assert _gone(server_pid), "the dev server outlived a SIGKILLed Otto"


def _older_ottos_server(tmp_path: Path) -> subprocess.Popen[bytes]:
    """A dev server on our database as an Otto without supervision left it: not tied to any parent."""
    db = tmp_path / "temporal.db"
    return subprocess.Popen(
        [temporal_cli(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", "0",
         "--db-filename", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


async def test_an_orphan_from_an_older_otto_is_ended(tmp_path: Path) -> None:
    orphan = _older_ottos_server(tmp_path)
    (tmp_path / "server.pid").write_text(str(orphan.pid))
    t = EmbeddedTemporal(tmp_path)
    await t.start()
    try:
        assert orphan.wait(timeout=15) is not None
        assert t.alive
        assert t.process is not None
        assert t.process.pid != orphan.pid
    finally:
        t.stop()


async def test_a_dead_server_is_noticed(tmp_path: Path) -> None:
    t = EmbeddedTemporal(tmp_path)
    await t.start()
    deaths: list[int | None] = []
    watcher = asyncio.create_task(t.watch(deaths.append, every_s=0.05))
    try:
        assert t.process is not None
        t.process.kill()  # as the OOM killer would
        await asyncio.wait_for(watcher, 10)
        assert deaths == [-signal.SIGKILL]
    finally:
        t.stop()
