"""Outages against a real ``otto serve`` (used by ``tests/test_outages.py``): GitHub answering 502 to every
API and git request, or the model answering 529, for longer than Otto's in-process and per-activity retries
last; then service comes back, and what the world saw is counted like the crash tests count it.

The outage ends on events, not on a clock: once the run shows it is waiting (its state, queried from
Temporal, and the Mission Control snapshot in the artifact store) and the failing service has answered more
failing requests than Otto's retries used to allow before they gave up for good (6 for a GitHub call).
"""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.artifacts import snapshot_key
from app.contracts.ids import run_workflow_id
from app.dev.demo import SAMPLE_REPO
from app.dev.local import LocalWorld
from app.dev.simulator import Simulator
from app.domain.outages import Waiting
from app.domain.run import RunState
from app.domain.usage import Usage
from tests.crashes import CHECK, CHECK_NAME, served_usage, shout_scenario
from tests.e2e import eventually, label_new_issue, wait_for_state
from tests.processes import OttoServe
from tests.test_faults import new_repo

OLD_GITHUB_TRIES = 6  # a GitHub call gave up for good after this many failing answers before
HOLD = "outage-mid-step"
# waits short enough for a test: the first after 1 s, doubling to 2 s; the model's SDK retries once
FAST = {"outage_first_wait_s": 1.0, "outage_max_wait_s": 2.0, "model_max_retries": 1}


@dataclass
class Story:
    """A run through an outage, as the world saw it."""

    otto: OttoServe
    world: LocalWorld
    owner: str
    name: str
    number: int
    repo_id: int
    maintainer: str
    baseline: int = 0  # failing GitHub answers before this story began (the world is shared)

    @property
    def sim(self) -> Simulator:
        return self.world.sim

    async def state(self, until: Callable[[RunState], bool], within: float = 240.0) -> RunState:
        return await wait_for_state(await self.otto.client(), self.repo_id, self.number, until, within)

    def snapshot(self) -> dict[str, Any]:
        """The run as Mission Control shows it (its snapshot in the artifact store)."""
        state = self.otto.data_dir / "artifacts" / snapshot_key(run_workflow_id(self.repo_id, self.number))
        return dict(json.loads(state.read_text())) if state.is_file() else {}

    def failed_github_calls(self) -> int:
        """GitHub's failing answers (the outage's 502s) since this story began."""
        return failed_502(self.sim) - self.baseline

    def status_bodies(self) -> list[str]:
        """Every body the status comment had, oldest first."""
        mine = [
            c for c in self.sim.comments(self.owner, self.name, self.number) if c.user.login == "otto[bot]"
        ]
        status = [c for c in mine if "otto:status" in c.body]
        return [*status[0].edits, status[0].body] if status else []

    def pushes(self) -> list[tuple[str, str | None, str | None]]:
        return [
            u for p in self.sim.pushes if p.owner == self.owner and p.repo == self.name for u in p.updates
        ]

    def check_runs(self) -> dict[str, int]:
        heads = {new for _ref, _old, new in self.pushes() if new is not None}
        return {
            sha: len([c for c in self.sim.check_runs(self.owner, self.name, sha) if c.name == CHECK_NAME])
            for sha in heads
        }

    def served(self) -> Usage:
        return served_usage(self.world)

    def agent_steps(self) -> list[tuple[int, int]]:
        return [(q.step, q.status) for q in self.world.model.received_for("agent", "t1")]

    async def approve_and_merge(self) -> RunState:
        pulls = self.sim.pulls(self.owner, self.name)
        assert len(pulls) == 1, pulls
        self.sim.submit_review(self.owner, self.name, pulls[0].number, self.maintainer, "APPROVED")
        return await self.state(lambda s: s.phase.final, within=180)

    def shouts_on_main(self) -> int:
        return (self.sim.read_file(self.owner, self.name, "main", "greeter/core.py") or "").count(
            "def shout("
        )


def failed_502(sim: Simulator) -> int:
    return len([c for c in sim.calls if c.injected and c.status == 502])


@dataclass
class Served:
    """One world and one real ``otto serve`` for the outage stories (one after another)."""

    world: LocalWorld
    otto: OttoServe
    disks: list[Path]  # small tmpfs mounts under Otto's data dir, to fill (empty: they could not be mounted)
    why_no_disks: str = ""


@contextlib.asynccontextmanager
async def serve(root: Path) -> AsyncIterator[Served]:
    """The world and ``otto serve`` (short waits); its checkouts, mirrors and scratch on small disks."""
    world = LocalWorld.start(root / "world")
    try:
        data = root / "otto"
        with small_disks([data / "checkouts", data / "mirrors", data / "scratch"], 48) as (disks, why):
            otto = OttoServe(world, root, {"shutdown_grace_s": 2.0, **FAST})
            otto.start()
            try:
                await otto.wait_ready()
                yield Served(world, otto, disks, why)
            finally:
                otto.stop()
    finally:
        world.stop()


async def begin(
    served: Served, name: str, hold_step: int | None = None, *, model_down: bool = False
) -> Story:
    """The shout issue labelled on a new repository (``hold_step``: that agent step's answer waits at
    :data:`HOLD` until the test releases it; ``model_down``: the model answers 529 from the start)."""
    world = served.world
    world.sim.end_outage()
    world.model.end_outage()
    files = {**SAMPLE_REPO, ".github/otto.yml": f"verify: {CHECK}\n"}
    r = new_repo(world.sim, world.app_id, name, files)
    script = shout_scenario(None)
    if hold_step is not None:
        script["agent"]["t1"][hold_step] = {**script["agent"]["t1"][hold_step], "hold": HOLD}
    world.model.load(script)
    if model_down:
        world.model.outage(529)
    baseline = failed_502(world.sim)
    number, rid = label_new_issue(world.sim, r, title="Add a shout mode", body="shout(name), in capitals.")
    return Story(served.otto, world, r.owner, r.name, number, rid, r.maintainer, baseline)


async def waiting_for(story: Story, service: str, within: float = 240.0) -> Waiting:
    """The wait as the run reports it (Temporal query) once it waits for ``service``."""
    state = await story.state(lambda s: s.waiting is not None and s.waiting.service == service, within)
    assert state.waiting is not None
    return state.waiting


async def past_old_budget(story: Story, within: float = 240.0) -> int:
    """Once GitHub has answered more failing requests than a call was allowed before: the count."""
    return int(await eventually(lambda: (n := story.failed_github_calls()) > OLD_GITHUB_TRIES and n, within))


@contextlib.contextmanager
def small_disks(paths: list[Path], size_mb: int) -> Iterator[tuple[list[Path], str]]:
    """A small tmpfs mounted at each of ``paths`` (Otto's checkouts, mirrors, scratch), for a disk that can
    be filled: yields the mounts, or none and why where this process may not mount (CAP_SYS_ADMIN)."""
    mounted: list[Path] = []
    why = ""
    try:
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            options = f"size={size_mb}m,mode=0755"
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
            )
            if done.returncode != 0:
                why = f"cannot mount a small tmpfs to fill ({done.stderr.strip()}): it needs CAP_SYS_ADMIN"
                break
            mounted.append(path)
        yield ([] if why else mounted), why
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write to ``disk`` until it is full; the file that fills it (unlink it to free the space)."""
    filler = disk / ".filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    return filler
