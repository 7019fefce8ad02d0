"""A real ``otto serve`` killed in the middle of a task, restarted on the same data dir, and what the world
saw counted (used by ``tests/test_crashes.py``, which asserts the counts, and ``bench crash``, which
reports the timings too).

One issue, one task ("Add shout()"): the agent edits ``greeter/core.py`` (step 0), adds a test (step 1) and
answers (step 2); the repository's check is ``sleep 4 && python -m pytest -q``. Where it is killed:

- ``agent``: SIGKILL Otto while the model holds its answer to the agent's step 1 (the scripted model
  delays that one answer; the kill is timed on the model *receiving* the request, not on the delay): the
  step-0 edit is in the checkout, nothing is pushed;
- ``verify``: SIGKILL Otto while the check runs (timed on the sandboxed ``sleep`` appearing): the agent's
  work is pushed, the check is half done;
- ``engine``: SIGKILL only Otto's embedded Temporal server at the agent's step 1: Otto notices, stops
  (exit 1) and is started again, as its supervisor would.

Then the run must finish as if nothing happened, and the counts are read from the simulator's and the
scripted model's own records: pushes (no sha twice, nothing forced), check runs per head, PRs, status
comments, and the model calls the run reports against those the model served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.dev.demo import SAMPLE_REPO
from app.dev.local import LocalWorld
from app.domain.run import RunState
from app.domain.usage import Usage
from tests.e2e import eventually, label_new_issue, settled, wait_for_state
from tests.processes import OttoServe, processes_mentioning
from tests.test_faults import new_repo

Where = Literal["agent", "verify", "engine"]
EDIT = "str_replace_based_edit_tool"
SHOUT = 'def shout(name: str) -> str:\n    """The greeting, in capitals."""\n    return greet(name).upper()\n'
CHECK_SLEEP = "sleep 4"
CHECK = f"{CHECK_SLEEP} && python -m pytest -q"
CHECK_NAME = "otto/verify"
MODEL = "claude-sonnet-4-6"  # Otto's default model, which the crash runs use
HOLD = "crash-mid-step"  # the hold of the held answer: never released, it ends when the killed Otto is gone

SHOUT_TASK = {
    "id": "t1",
    "title": "Add shout() to greeter.core",
    "intent": "A shout(name) function returning the greeting in capitals.",
    "acceptance": ["shout('Ada') == 'HELLO, ADA!'"],
    "depends_on": [],
}


def shout_scenario(hold_step: int | None) -> dict[str, Any]:
    """The scripted model: classify, plan one task, the agent's three steps (``hold_step``'s first answer
    held at ``HOLD`` until its client is gone, then a 529 it never gets; a retry of it is answered at
    once)."""
    steps: list[dict[str, Any]] = [
        {
            "tool_use": {
                "name": EDIT,
                "input": {
                    "command": "str_replace",
                    "path": "greeter/core.py",
                    "old_str": '    return f"Hello, {name}!"\n',
                    "new_str": '    return f"Hello, {name}!"\n\n\n' + SHOUT,
                },
            }
        },
        {
            "tool_use": {
                "name": EDIT,
                "input": {
                    "command": "create",
                    "path": "tests/test_shout.py",
                    "file_text": "from greeter.core import shout\n\n\ndef test_shout():\n"
                    '    assert shout("Ada") == "HELLO, ADA!"\n',
                },
            }
        },
        {"text": "Added shout() and its test."},
    ]
    if hold_step is not None:
        steps[hold_step] = {**steps[hold_step], "errors": [{"status": 529, "hold": HOLD}]}
    return {
        "classify": [{"json": {"actionable": True, "summary": "Add shout()."}}],
        "plan": [{"json": {"summary": "One task.", "tasks": [SHOUT_TASK]}}],
        "agent": {"t1": steps},
    }


@dataclass
class CrashReport:
    where: Where
    state: RunState  # the run once its task is done (waiting for review)
    merged: RunState  # the run once its PR was approved and merged
    exit_code: int  # the killed Otto's (-9 when SIGKILLed; 1 when it stopped because its engine died)
    killed_s: float  # from the kill to Otto gone (the engine case: Otto noticing and exiting)
    ready_s: float  # from the restart to /readyz 200
    resumed_s: float  # from the kill to the task at work again (the agent asking, the check running)
    finished_s: float  # from the kill to the task done (its PR and check run published)
    pushes: list[tuple[str, str | None, str | None]]  # (ref, old, new) of every push to the repository
    forced: list[str]  # refs whose new head does not contain the old one
    check_runs: dict[str, int]  # head sha → otto/verify check runs on it
    pulls: int
    status_comments: int  # comments created on the issue before the merge (the status comment: 1)
    agent_requests: list[tuple[int, int]]  # (step, status) of each agent request as it arrived (status 0:
    # still unanswered, 499: answered too late, the client was gone)
    served: Usage  # what the model served (status 200, the client still there), priced as Otto prices it
    shouts_on_main: int  # how often ``def shout`` is in greeter/core.py on main after the merge
    leftovers: dict[int, str] = field(default_factory=dict)  # the killed Otto's checks still running


def served_usage(world: LocalWorld, model: str = MODEL) -> Usage:
    """Every answer the scripted model served, priced as Otto prices a call."""
    total = Usage()
    for rec in world.model.served():
        u = rec.usage or {}
        total = total + Usage.of_call(
            model,
            input_tokens=int(u.get("input_tokens", 0)),
            output_tokens=int(u.get("output_tokens", 0)),
            cache_creation_input_tokens=int(u.get("cache_creation_input_tokens", 0)),
            cache_read_input_tokens=int(u.get("cache_read_input_tokens", 0)),
        )
    return total


def sandboxed(otto: OttoServe, text: str) -> dict[int, str]:
    """Commands running under this Otto's data dir whose command line contains ``text``."""
    return {pid: line for pid, line in processes_mentioning(str(otto.data_dir)).items() if text in line}


async def crash_and_recover(world: LocalWorld, root: Path, where: Where, **settings: object) -> CrashReport:
    """Run the shout issue on a fresh ``otto serve`` (``settings``: ``OTTO_*`` overrides), kill it
    ``where``, restart it, wait for the task, approve its PR and wait for the merge."""
    otto = OttoServe(world, root, {"shutdown_grace_s": 2.0, **settings})
    try:
        return await _crash(otto, world, where)
    finally:
        otto.stop()


async def _crash(otto: OttoServe, world: LocalWorld, where: Where) -> CrashReport:
    sim = world.sim
    otto.start()
    await otto.wait_ready()
    files = {**SAMPLE_REPO, ".github/otto.yml": f"verify: {CHECK}\n"}
    r = new_repo(sim, world.app_id, f"crash-{where}", files)
    world.model.load(shout_scenario(None if where == "verify" else 1))
    number, rid = label_new_issue(sim, r, title="Add a shout mode", body="shout(name), in capitals.")

    def asked(step: int) -> int:
        return len([q for q in world.model.received_for("agent", "t1") if q.step == step])

    if where == "verify":
        checks = await eventually(lambda: sandboxed(otto, CHECK_SLEEP), within=180)
    else:
        await world.model.held(HOLD, within=180)  # its answer is held: the agent is mid-step
    started_over = asked(0)

    killed = time.monotonic()
    if where == "engine":
        otto.kill_engine()
        exit_code = await asyncio.to_thread(otto.wait_exit, 120)
    else:
        otto.kill()
        exit_code = otto.process.returncode
    killed_s = time.monotonic() - killed
    leftovers: dict[int, str] = {}
    if where == "verify":  # the killed Otto's check must not outlive it
        with contextlib.suppress(AssertionError):
            await eventually(lambda: not (set(sandboxed(otto, CHECK_SLEEP)) & set(checks)), within=15)
        leftovers = {p: c for p, c in sandboxed(otto, CHECK_SLEEP).items() if p in checks}

    ready_s = await otto.restart()
    if where == "verify":
        await eventually(lambda: set(sandboxed(otto, CHECK_SLEEP)) - set(checks), within=180)
    else:
        await eventually(lambda: asked(0) > started_over, within=180)  # the attempt started over
    resumed_s = time.monotonic() - killed
    client = await otto.client()
    state = await wait_for_state(client, rid, number, settled, within=240)
    finished_s = time.monotonic() - killed
    status_comments = sim.count_calls("POST", f"/repos/{r.owner}/{r.name}/issues/{number}/comments", 201)

    updates = [u for p in sim.pushes if p.owner == r.owner and p.repo == r.name for u in p.updates]
    heads = {new for _ref, _old, new in updates if new is not None}
    check_runs = {
        sha: len([c for c in sim.check_runs(r.owner, r.name, sha) if c.name == CHECK_NAME]) for sha in heads
    }
    forced = [
        ref
        for ref, old, new in updates
        if old is not None
        and new is not None
        and old not in {c.sha for c in sim.git_log(r.owner, r.name, new)}
    ]
    pulls = sim.pulls(r.owner, r.name)
    if pulls:
        sim.submit_review(r.owner, r.name, pulls[0].number, r.maintainer, "APPROVED")
    merged = await wait_for_state(client, rid, number, lambda s: s.phase.final, within=120)
    main = sim.read_file(r.owner, r.name, "main", "greeter/core.py") or ""
    return CrashReport(
        where=where,
        state=state,
        merged=merged,
        exit_code=exit_code,
        killed_s=killed_s,
        ready_s=ready_s,
        resumed_s=resumed_s,
        finished_s=finished_s,
        pushes=updates,
        forced=forced,
        check_runs=check_runs,
        pulls=len(pulls),
        status_comments=status_comments,
        agent_requests=[(q.step, q.status) for q in world.model.received_for("agent", "t1")],
        served=served_usage(world),
        shouts_on_main=main.count("def shout("),
        leftovers=leftovers,
    )
