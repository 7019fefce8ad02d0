"""Artifacts that outlive a worker: one small store interface, a local directory or S3-compatible storage.

Keys are relative, ``/``-separated paths laid out like the artifact dir always was::

    <run>/plan.json  <run>/replan-*.json  <run>/pilot-<n>.json  <run>/issue.json  <run>/context.md
    <run>/learnings/<task>-attempt-<n>.md
    <run>/<task>/attempt-<n>/transcript.jsonl  verify.<k>.log (k=0: first check)  summary.md  diff.patch
    _runs/<run>.json        the run's snapshot (state, timeline), written on every status publish

where ``<run>`` is the run id made path-safe (``otto/12/3`` → ``otto-12-3``). Workers write, the web
process reads; a retried attempt on another worker reads what the dead one left (``mirrored``).

``LocalArtifactStore`` (the default, ``<data dir>/artifacts``) writes atomically (temp file + rename);
``S3ArtifactStore`` talks to any S3-compatible server with boto3. Both are synchronous: call them from a
thread in async code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from app.settings import Settings

log = logging.getLogger("otto.artifacts")

SNAPSHOTS = "_runs/"
_BAD_SEGMENTS = {"", ".", ".."}


class ArtifactKeyError(ValueError):
    """A key that is not a plain relative path (absolute, ``..``, empty segments, control characters)."""


def check_key(key: str) -> str:
    if (
        not key
        or len(key) > 900
        or "\\" in key
        or any(ord(c) < 32 or ord(c) == 127 for c in key)
        or any(part in _BAD_SEGMENTS for part in key.split("/"))
    ):
        raise ArtifactKeyError(f"not a valid artifact key: {key!r}")
    return key


def run_key(run_id: str) -> str:
    """The run's path-safe name: ``otto/12/3`` → ``otto-12-3``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-") or "run"


def attempt_prefix(run_id: str, task_id: str, attempt: int) -> str:
    return f"{run_key(run_id)}/{run_key(task_id)}/attempt-{attempt}"


def snapshot_key(run_id: str) -> str:
    return f"{SNAPSHOTS}{run_key(run_id)}.json"


@dataclass(frozen=True)
class ArtifactInfo:
    key: str
    size: int
    version: str  # changes whenever the content does (an ETag, or mtime and size)


class ArtifactStore(ABC):
    """put / get / list of bytes (and text) under relative keys."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[ArtifactInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix, like S3), sorted by key."""

    @abstractmethod
    def describe(self) -> str: ...

    def put_text(self, key: str, text: str) -> None:
        self.put(key, text.encode("utf-8"))

    def get_text(self, key: str) -> str | None:
        data = self.get(key)
        return None if data is None else data.decode("utf-8", errors="replace")


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"directory {self.root}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def list(self, prefix: str = "") -> list[ArtifactInfo]:
        if prefix:
            check_key(prefix.rstrip("/") or "x")
        # walk only the deepest directory the prefix names
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*head.split("/")) if head else self.root
        found: list[ArtifactInfo] = []
        if not start.is_dir():
            return found
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".put-")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(".put-"):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                found.append(ArtifactInfo(key, st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}"))
        return sorted(found, key=lambda i: i.key)


class S3ArtifactStore(ArtifactStore):
    """Objects under ``s3://<bucket>/<prefix>`` of any S3-compatible server (AWS, MinIO, Ceph, moto...)."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> S3ArtifactStore:
        import boto3
        from botocore.config import Config

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"artifact store URL {url!r} names no bucket (s3://BUCKET[/PREFIX])")
        kwargs: dict[str, Any] = {}
        if access_key_id and secret_access_key:
            kwargs = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
            **kwargs,
        )
        return cls(client, bucket, prefix)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + check_key(key), Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = obj["Body"].read()
        return body

    def list(self, prefix: str = "") -> list[ArtifactInfo]:
        found: list[ArtifactInfo] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                found.append(ArtifactInfo(key, int(obj.get("Size", 0)), str(obj.get("ETag", "")).strip('"')))
        return sorted(found, key=lambda i: i.key)


def store_from_settings(settings: Settings) -> ArtifactStore:
    url = settings.artifacts_url
    if url and url.startswith("s3://"):
        secret = settings.s3_secret_access_key
        return S3ArtifactStore.connect(
            url,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    if url:
        return LocalArtifactStore(Path(url.removeprefix("file://")))
    return LocalArtifactStore(settings.artifacts_dir)


# --------------------------------------------------------------------------------------------- mirroring


class DirSync:
    """Keeps a worker-local directory and a key prefix in the store in step (files only, one level of
    bookkeeping: what was last uploaded, by mtime and size)."""

    def __init__(self, store: ArtifactStore, local: Path, prefix: str) -> None:
        self.store = store
        self.local = local
        self.prefix = prefix.rstrip("/") + "/"
        self._sent: dict[str, tuple[int, int]] = {}

    def _files(self) -> list[tuple[str, Path, tuple[int, int]]]:
        out = []
        for path in sorted(self.local.rglob("*")):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file():
                out.append((path.relative_to(self.local).as_posix(), path, (st.st_mtime_ns, st.st_size)))
        return out

    def download(self) -> int:
        """Fetch what the store has under the prefix that isn't here yet (a retry on another worker)."""
        count = 0
        for info in self.store.list(self.prefix):
            rel = info.key[len(self.prefix) :]
            target = self.local.joinpath(*check_key(rel).split("/"))
            if target.exists():
                continue
            data = self.store.get(info.key)
            if data is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            st = target.stat()
            self._sent[rel] = (st.st_mtime_ns, st.st_size)
            count += 1
        return count

    def upload(self) -> int:
        """Put every file that changed since it was last put."""
        count = 0
        for rel, path, stamp in self._files():
            if self._sent.get(rel) == stamp:
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            self.store.put(self.prefix + rel, data)
            self._sent[rel] = stamp
            count += 1
        return count


@contextlib.asynccontextmanager
async def mirrored(
    store: ArtifactStore, local: Path, prefix: str, *, hydrate: bool, every_s: float = 2.0
) -> AsyncIterator[Path]:
    """A scratch directory whose files reach the store under ``prefix`` every ``every_s`` seconds and when
    the block ends (however it ends); with ``hydrate``, first filled from what the store already has. Upload
    failures are logged, never raised: artifacts must not fail the work they describe."""
    await asyncio.to_thread(local.mkdir, parents=True, exist_ok=True)
    sync = DirSync(store, local, prefix)
    if hydrate:
        try:
            await asyncio.to_thread(sync.download)
        except Exception:
            log.warning("could not read earlier artifacts under %s from %s", prefix, store.describe())

    async def periodically() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(sync.upload)
            except Exception:
                log.warning("artifact upload to %s failed; retrying later", store.describe(), exc_info=True)

    task = asyncio.create_task(periodically())
    try:
        yield local
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await asyncio.to_thread(sync.upload)
        except Exception:
            log.warning("final artifact upload to %s failed", store.describe(), exc_info=True)
        else:
            shutil.rmtree(local, ignore_errors=True)


def put_quietly(store: ArtifactStore, key: str, text: str) -> None:
    """Best effort: an artifact that can't be written is logged, never fails the caller."""
    try:
        store.put_text(key, text)
    except Exception:
        log.warning("could not write artifact %s to %s", key, store.describe(), exc_info=True)


def append_learning(store: ArtifactStore, run_id: str, task_id: str, attempt: int, line: str) -> None:
    """One file per finished attempt (no read-modify-write races between workers), then ``context.md``
    rebuilt from all of them in order."""
    run = run_key(run_id)
    store.put_text(f"{run}/learnings/{run_key(task_id)}-attempt-{attempt:03d}.md", line.rstrip("\n") + "\n")
    parts = [store.get_text(i.key) or "" for i in store.list(f"{run}/learnings/")]
    store.put_text(f"{run}/context.md", "".join(parts))
