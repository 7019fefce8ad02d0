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
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

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

    def _load(self, infos: list[ArtifactInfo]) -> None:
        changed = False
        seen = set()
        for info in infos:
            if not info.key.endswith(".json"):
                continue
            seen.add(info.key)
            known = self._entries.get(info.key)
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
            self._entries[info.key] = _Entry(info.version, snap)
            changed = True
        for key in [k for k in self._entries if k not in seen]:
            del self._entries[key]
            changed = True
        if changed or (not self._ordered and self._entries):
            self._ordered = sorted(
                (e.snapshot for e in self._entries.values()), key=lambda s: s.created_at, reverse=True
            )

    async def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked < self.refresh_s:
            return
        async with self._lock:
            if not force and time.monotonic() - self._checked < self.refresh_s:
                return
            started = time.monotonic()

            def work() -> None:
                self._load(self.store.list(SNAPSHOTS))

            await asyncio.to_thread(work)
            self._checked = started

    async def runs(self) -> list[RunSnapshot]:
        """Every run, newest first."""
        await self.refresh()
        return self._ordered

    async def get(self, run_id: str) -> RunSnapshot | None:
        await self.refresh()
        entry = self._entries.get(snapshot_key(run_id))
        return entry.snapshot if entry else None


K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small least-recently-used cache (parsed transcripts, by key and version)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key not in self._data:
            return None
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.size:
            self._data.popitem(last=False)
