"""Every run, for the web process: the snapshots the status-publishing activity writes to the artifact store
(``_runs/<run>.json``), kept in memory and brought up to date at most every ``OTTO_UI_CATALOG_REFRESH_S``.

Why this design: the web process may run on another machine than every worker, with several of each. The
store is the one place all of them reach; Temporal holds live state but answers a query per run (and
replays closed workflows on a worker to do so), far too slow for a list of a thousand. A refresh is one
listing (one request per thousand runs on S3, a directory scan locally) and a read of only the snapshots
whose version (ETag, or mtime and size) changed, so a list page costs memory reads between refreshes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from app.artifacts import SNAPSHOTS, ArtifactInfo, ArtifactStore, snapshot_key
from app.domain.snapshot import RunSnapshot

log = logging.getLogger("otto.web")


@dataclass
class _Entry:
    version: str
    snapshot: RunSnapshot


class RunCatalog:
    def __init__(self, store: ArtifactStore, refresh_s: float) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._entries: dict[str, _Entry] = {}
        self._ordered: list[RunSnapshot] = []
        self._checked = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def _load(self, infos: list[ArtifactInfo]) -> None:
        """Runs in a thread: builds new maps and swaps them in (readers never see one half-updated)."""
        entries = dict(self._entries)
        changed = False
        seen = set()
        for info in infos:
            if not info.key.endswith(".json"):
                continue
            seen.add(info.key)
            known = entries.get(info.key)
            if known is not None and known.version == info.version:
                continue
            raw = self.store.get(info.key)
            if raw is None:
                continue
            try:
                snap = RunSnapshot.model_validate_json(raw)
            except ValueError:
                log.warning("unreadable run snapshot %s", info.key)
                continue
            entries[info.key] = _Entry(info.version, snap)
            changed = True
        for key in [k for k in entries if k not in seen]:
            del entries[key]
            changed = True
        if changed or (entries and not self._ordered):
            ordered = sorted((e.snapshot for e in entries.values()), key=lambda s: s.created_at, reverse=True)
            self._entries, self._ordered = entries, ordered

    async def refresh(self) -> None:
        """List the store and read the snapshots that changed (one refresh at a time)."""
        async with self._lock:
            started = time.monotonic()
            await asyncio.to_thread(lambda: self._load(self.store.list(SNAPSHOTS)))
            self._checked = started

    async def _background(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.warning("could not refresh the runs from %s", self.store.describe(), exc_info=True)

    async def _fresh_enough(self) -> None:
        """The first call loads everything; later ones answer from memory and, once it is older than
        ``refresh_s``, refresh in the background (stale-while-revalidate: a slow store never slows a page).
        ``refresh_s`` 0 refreshes before answering, every time."""
        if self._checked == float("-inf") or self.refresh_s <= 0:
            await self.refresh()
            return
        if time.monotonic() - self._checked >= self.refresh_s and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._background())

    async def runs(self) -> list[RunSnapshot]:
        """Every run, newest first."""
        await self._fresh_enough()
        return self._ordered

    async def get(self, run_id: str) -> RunSnapshot | None:
        """One run; one not seen yet (just started, linked from GitHub) is read from the store at once."""
        await self._fresh_enough()
        key = snapshot_key(run_id)
        entry = self._entries.get(key)
        if entry is not None:
            return entry.snapshot
        raw = await asyncio.to_thread(self.store.get, key)
        if raw is None:
            return None
        try:
            snap = RunSnapshot.model_validate_json(raw)
        except ValueError:
            return None
        self._entries.setdefault(key, _Entry("read directly", snap))
        return snap
