"""Reading artifacts for the pages through small caches, so a page costs few or no store requests: objects by
(key, version), listings by (prefix, token) where the token is what invalidates them (the run's snapshot
sequence, or "final" for an attempt that can no longer change). Thread-safe; the store calls block."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from app.artifacts import ArtifactInfo, ArtifactStore

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class CachedReads:
    def __init__(self, store: ArtifactStore, object_bytes: int = 64 << 20, listings: int = 256) -> None:
        self.store = store
        self.object_bytes = object_bytes  # the objects kept, in bytes at most
        self._objects: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self._listings: LRU[tuple[str, str], list[ArtifactInfo]] = LRU(listings)

    def list(self, prefix: str, token: str | None) -> list[ArtifactInfo]:
        """The store's listing; reused while ``token`` is the same (None: always ask the store)."""
        if token is not None:
            hit = self._listings.get((prefix, token))
            if hit is not None:
                return hit
        infos = self.store.list(prefix)
        if token is not None:
            self._listings.put((prefix, token), infos)
        return infos

    def get(self, key: str, version: str) -> bytes | None:
        """The object, reused while its ``version`` (from a listing, or a token) is the same."""
        cache_key = (key, version)
        with self._lock:
            hit = self._objects.get(cache_key)
            if hit is not None:
                self._objects.move_to_end(cache_key)
                return hit
        data = self.store.get(key)
        if data is not None and len(data) <= self.object_bytes // 4:
            with self._lock:
                if cache_key not in self._objects:
                    self._objects[cache_key] = data
                    self._held += len(data)
                while self._held > self.object_bytes:
                    _key, dropped = self._objects.popitem(last=False)
                    self._held -= len(dropped)
        return data

    def text(self, key: str, version: str) -> str | None:
        data = self.get(key, version)
        return None if data is None else data.decode("utf-8", errors="replace")

    def text_of(self, info: ArtifactInfo) -> str | None:
        return self.text(info.key, info.version)
