"""The artifact store (a local directory, and S3 against a real S3-compatible server: moto's), mirroring an
attempt's scratch dir to it (a retry on another worker continues from what the store has), learnings,
run snapshots and the web process's catalog of them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.artifacts import (
    ArtifactInfo,
    ArtifactKeyError,
    ArtifactStore,
    LocalArtifactStore,
    append_learning,
    mirrored,
    snapshot_key,
)
from app.domain.plan import PlannedTask
from app.domain.run import RepoRef, RunPhase, RunState, TaskRecord, TaskStatus
from app.domain.snapshot import advance, task_durations
from app.web.catalog import RunCatalog
from tests.s3_server import S3Server, running_s3

REPO = RepoRef(installation_id=1, owner="o", name="r", repo_id=7)
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
async def s3(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[S3Server]:
    async with running_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield LocalArtifactStore(tmp_path / "artifacts")
    else:
        server: S3Server = request.getfixturevalue("s3")
        yield server.store(f"b-{uuid.uuid4().hex[:12]}", "otto/prod")


def test_put_get_list_bytes_and_text(store: ArtifactStore) -> None:
    assert store.get("run/missing.txt") is None
    assert store.list("run/") == []
    store.put("run/t1/attempt-1/transcript.jsonl", b'{"kind": "user"}\n')
    store.put_text("run/t1/attempt-1/verify-round-0.log", "4 passed ✓\n")
    store.put_text("run/plan.json", "{}")
    store.put_text("other/plan.json", "{}")
    assert store.get("run/t1/attempt-1/transcript.jsonl") == b'{"kind": "user"}\n'
    assert store.get_text("run/t1/attempt-1/verify-round-0.log") == "4 passed ✓\n"
    keys = [i.key for i in store.list("run/")]
    assert keys == [
        "run/plan.json",
        "run/t1/attempt-1/transcript.jsonl",
        "run/t1/attempt-1/verify-round-0.log",
    ]
    assert [i.key for i in store.list("run/t1/attempt-1/verify")] == ["run/t1/attempt-1/verify-round-0.log"]
    assert [i.size for i in store.list("run/plan")] == [2]
    assert len(store.list("")) == 4
    before = store.list("run/plan.json")[0].version
    store.put_text("run/plan.json", '{"tasks": []}')
    assert store.list("run/plan.json")[0].version != before
    assert store.get_text("run/plan.json") == '{"tasks": []}'


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a//b", "a/./b", "a/../../b", "a\x00b", "", "a\\b"])
def test_keys_that_are_not_plain_relative_paths_are_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(ArtifactKeyError):
        store.put_text(key, "x")
    with pytest.raises(ArtifactKeyError):
        store.get(key)


def test_the_local_store_writes_only_under_its_root(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "root")
    store.put_text("a/b.txt", "x")
    with pytest.raises(ArtifactKeyError):
        store.put_text("../outside.txt", "x")
    assert not (tmp_path / "outside.txt").exists()
    assert sorted(p.name for p in (tmp_path / "root" / "a").iterdir()) == ["b.txt"]  # no temp files left


async def test_a_retry_on_another_worker_continues_from_the_store(
    store: ArtifactStore, tmp_path: Path
) -> None:
    prefix = "otto-7-3/t1/attempt-1"
    # worker A: the transcript is uploaded while the attempt runs, and once more when it ends
    async with mirrored(store, tmp_path / "worker-a", prefix, hydrate=False, every_s=0.05) as scratch:
        (scratch / "transcript.jsonl").write_text('{"kind": "user", "payload": {"content": "go"}}\n')
        for _ in range(200):
            if store.get(f"{prefix}/transcript.jsonl") is not None:
                break
            await asyncio.sleep(0.02)
        assert store.get(f"{prefix}/transcript.jsonl") is not None, "not uploaded while running"
        with (scratch / "transcript.jsonl").open("a") as f:
            f.write('{"kind": "assistant", "payload": {"step": 1, "content": []}}\n')
        (scratch / "verify-round-0.log").write_text("1 failed\n")
    assert not (tmp_path / "worker-a").exists()  # scratch removed once everything is in the store
    # worker B (A died; the activity is retried elsewhere): starts from the store, appends, uploads
    async with mirrored(store, tmp_path / "worker-b", prefix, hydrate=True, every_s=60) as scratch:
        assert (scratch / "verify-round-0.log").read_text() == "1 failed\n"
        with (scratch / "transcript.jsonl").open("a") as f:
            f.write('{"kind": "assistant", "payload": {"step": 2, "content": []}}\n')
    lines = (store.get_text(f"{prefix}/transcript.jsonl") or "").splitlines()
    assert [line[:22] for line in lines] == ['{"kind": "user", "payl', *['{"kind": "assistant", '] * 2]


async def test_a_failing_store_never_fails_the_attempt(tmp_path: Path) -> None:
    class Broken(LocalArtifactStore):
        def put(self, key: str, data: bytes) -> None:
            raise OSError("the store is down")

    async with mirrored(Broken(tmp_path / "s"), tmp_path / "w", "p", hydrate=True, every_s=0.01) as scratch:
        (scratch / "summary.md").write_text("done\n")
    assert (tmp_path / "w" / "summary.md").read_text() == "done\n"  # kept: it never reached the store


def test_learnings_from_parallel_attempts_end_up_in_context_md(store: ArtifactStore) -> None:
    append_learning(store, "otto/7/3", "t2", 1, "- t2 (B; passed): did b")
    append_learning(store, "otto/7/3", "t1", 1, "- t1 (A; failed): tried a")
    append_learning(store, "otto/7/3", "t1", 2, "- t1 (A; passed): did a")
    assert store.get_text("otto-7-3/context.md") == (
        "- t1 (A; failed): tried a\n- t1 (A; passed): did a\n- t2 (B; passed): did b\n"
    )


def _state(phase: RunPhase, **tasks: TaskStatus) -> RunState:
    recs = [
        TaskRecord(
            task=PlannedTask(id=tid, title=tid, intent="x"),
            batch=0,
            branch=f"b/{tid}",
            status=status,
            attempts=1 if status != TaskStatus.PENDING else 0,
        )
        for tid, status in tasks.items()
    ]
    return RunState(run_id="otto/7/3", repo=REPO, issue_number=3, phase=phase, tasks=recs)


def test_snapshots_record_a_timeline_and_durations() -> None:
    s1 = advance(None, _state(RunPhase.PLANNING), now=T0, execution="e1")
    s2 = advance(
        s1,
        _state(RunPhase.RUNNING, t1=TaskStatus.RUNNING, t2=TaskStatus.PENDING),
        now=T0 + timedelta(seconds=10),
        execution="e1",
    )
    state = _state(RunPhase.WAITING_REVIEW, t1=TaskStatus.PASSED, t2=TaskStatus.PENDING)
    state.notices.append("🔁 @alice asked to retry t1.")
    state.stop_requested_by = "bob"
    s3 = advance(s2, state, now=T0 + timedelta(seconds=70), execution="e1", issue_title="Shout")
    assert (s3.seq, s3.created_at, s3.issue_title) == (3, T0, "Shout")
    assert [(e.kind, e.text) for e in s3.timeline] == [
        ("phase", "planning"),
        ("phase", "running"),
        ("task", "t1 attempt 1 started"),
        ("phase", "waiting review"),
        ("task", "t1 passed"),
        ("notice", "🔁 @alice asked to retry t1."),
        ("stop", "@bob asked to stop"),
    ]
    assert task_durations(s3, T0 + timedelta(hours=1)) == {"t1": 60.0}
    # the issue labeled again: a new execution starts a new timeline
    s4 = advance(s3, _state(RunPhase.PLANNING), now=T0 + timedelta(days=1), execution="e2")
    assert (s4.seq, s4.created_at, len(s4.timeline)) == (1, T0 + timedelta(days=1), 1)


async def test_the_catalog_reads_only_changed_snapshots(store: ArtifactStore) -> None:
    catalog = RunCatalog(store, refresh_s=0)
    assert await catalog.runs() == []
    for n in range(3):
        state = _state(RunPhase.RUNNING).model_copy(update={"run_id": f"otto/7/{n}", "issue_number": n})
        snap = advance(None, state, now=T0 + timedelta(minutes=n), execution="e")
        store.put_text(snapshot_key(state.run_id), snap.model_dump_json())
    store.put_text("_runs/otto-7-9.json", "not json")  # a broken one is skipped, not fatal
    runs = await catalog.runs()
    assert [s.state.issue_number for s in runs] == [2, 1, 0]  # newest first
    first = await catalog.get("otto/7/0")
    assert first is not None
    assert first.state.phase == RunPhase.RUNNING
    done = advance(
        first, first.state.model_copy(update={"phase": RunPhase.DONE}), now=T0 + timedelta(hours=1)
    )
    store.put_text(snapshot_key("otto/7/0"), done.model_dump_json())
    again = await catalog.get("otto/7/0")
    assert again is not None
    assert again.state.phase == RunPhase.DONE
    assert again.seq == 2
    assert (await catalog.get("otto/7/1")) is runs[1]  # unchanged: not read again


def test_cached_reads_reuse_by_version_and_token_within_a_byte_budget(tmp_path: Path) -> None:
    from app.web.reader import CachedReads

    class Counting(LocalArtifactStore):
        gets = lists = 0

        def get(self, key: str) -> bytes | None:
            self.gets += 1
            return super().get(key)

        def list(self, prefix: str = "") -> list[ArtifactInfo]:
            self.lists += 1
            return super().list(prefix)

    store = Counting(tmp_path / "s")
    for name in "abcdef":
        store.put(f"r/{name}", name.encode() * 100)
    reads = CachedReads(store, object_bytes=400)
    assert reads.get("r/a", "v1") == b"a" * 100
    assert reads.get("r/a", "v1") == b"a" * 100
    assert store.gets == 1
    reads.get("r/a", "v2")  # another version: read again
    assert store.gets == 2
    for name in "bcdef":
        reads.get(f"r/{name}", "v1")
    reads.get("r/a", "v1")  # pushed out by the budget (400 bytes, 100 each): read again
    assert store.gets == 8
    assert len(reads.list("r/", "seq-3")) == 6
    assert len(reads.list("r/", "seq-3")) == 6
    assert store.lists == 1
    reads.list("r/", None)
    reads.list("r/", None)
    assert store.lists == 3  # no token: always asked
