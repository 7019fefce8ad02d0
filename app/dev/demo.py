"""`otto demo`: the whole story on one machine, no credentials needed.

Starts the GitHub simulator, the scripted model, Temporal's dev server and Otto (web server + worker) on
loopback; creates a small Python repository with its own tests and an issue that needs two tasks; labels
it as a maintainer would; shows the run live; ends with where to look.
"""

from __future__ import annotations

import asyncio
import shutil
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from app.contracts.ids import run_workflow_id
from app.dev.local import LocalWorld, running_otto
from app.domain.render import plural
from app.domain.run import RunPhase, RunState, TaskStatus
from app.engine import EmbeddedTemporal, connect, ensure_retention

SCENARIO = Path(__file__).parent / "demo_data" / "scenario.yaml"
OWNER, REPO, MAINTAINER = "octo-org", "greeter", "mona"

SAMPLE_REPO = {
    "README.md": "# greeter\n\nA tiny sample project: `python -m greeter.cli NAME` prints a greeting.\n",
    ".gitignore": "__pycache__/\n.pytest_cache/\n",
    ".github/otto.yml": "verify: python -m pytest -q\n",
    "greeter/__init__.py": "",
    "greeter/core.py": (
        'def greet(name: str) -> str:\n    """A friendly greeting."""\n    return f"Hello, {name}!"\n'
    ),
    "greeter/cli.py": textwrap.dedent(
        """\
        import sys

        from greeter.core import greet


        def main(argv: list[str] | None = None) -> int:
            args = sys.argv[1:] if argv is None else list(argv)
            print(greet(args[0] if args else "world"))
            return 0


        if __name__ == "__main__":
            raise SystemExit(main())
        """
    ),
    "tests/test_core.py": (
        'from greeter.core import greet\n\n\ndef test_greet():\n    assert greet("Ada") == "Hello, Ada!"\n'
    ),
}

ISSUE_TITLE = "Add a shout mode"
ISSUE_BODY = (
    "Sometimes a greeting needs to be loud.\n\n"
    "- a `shout(name)` function in `greeter.core` that returns the greeting in capitals\n"
    "- `python -m greeter.cli --shout NAME` prints it\n\n"
    "Both with tests, please."
)


def _say(text: str) -> None:
    print(text, flush=True)


PHASE_WORDS = {
    RunPhase.STARTING: "starting",
    RunPhase.QUEUED: "waiting for a free slot",
    RunPhase.PLANNING: "planning",
    RunPhase.PLAN_REVIEW: "the plan waits for a writer's approval",
    RunPhase.RUNNING: "working on the tasks",
    RunPhase.WAITING_REVIEW: "done working; the pull requests wait for review",
    RunPhase.DONE: "done",
    RunPhase.NEEDS_INFO: "needs answers on the issue",
    RunPhase.FAILED: "failed",
    RunPhase.CANCELLED: "stopped",
}


def describe(state: RunState) -> list[str]:
    """The run as a few lines for a terminal, in words (never a state name)."""
    lines = [f"  run {state.run_id}: {PHASE_WORDS.get(state.phase, 'working')}"]
    for r in state.tasks:
        pr = f"  PR #{r.pr_number}" if r.pr_number else ""
        lines.append(f"    [{r.status.value:>8}] {r.task.id} (batch {r.batch + 1}) {r.task.title}{pr}")
    usage = state.usage
    lines.append(f"  {plural(usage.calls, 'model call')}, {usage.total_tokens} tokens, ${usage.cost_usd:.4f}")
    return lines


async def run_demo(keep: bool = False, root: Path = Path(".otto/demo"), timeout_s: float = 300.0) -> int:
    started = time.monotonic()
    shutil.rmtree(root, ignore_errors=True)
    _say("Otto demo: starting the GitHub simulator, the scripted model and Temporal's dev server…")
    world = LocalWorld.start(root / "world", SCENARIO)
    temporal = EmbeddedTemporal(root / "temporal")
    try:
        address = await temporal.start()
        settings = world.settings(root / "otto", address)
        client = await connect(address, settings.temporal_namespace)
        await ensure_retention(client, settings.temporal_namespace)
        async with running_otto(world, settings, client) as otto:
            sim = world.sim
            sim.create_user(MAINTAINER)
            sim.create_user(OWNER, type="Organization")
            sim.create_repo(OWNER, REPO, SAMPLE_REPO)
            sim.set_permission(OWNER, REPO, MAINTAINER, "maintain")
            sim.install_app(world.app_id, OWNER)
            number = sim.create_issue(OWNER, REPO, ISSUE_TITLE, ISSUE_BODY, MAINTAINER)
            _say(f"  GitHub simulator {world.sim_server.url}  ·  scripted model {world.model_server.url}")
            _say(f"  Temporal {address}  ·  Otto {otto.url}")
            _say(f"Issue #{number} '{ISSUE_TITLE}' in {OWNER}/{REPO}; @{MAINTAINER} labels it `otto`…")
            delivery = sim.add_label(OWNER, REPO, number, "otto", MAINTAINER)
            _say(f"  webhook issues.labeled → Otto answered {delivery.status_code}")

            state = await _follow(client, world, number, timeout_s)
            _report(world, number, state, time.monotonic() - started, settings.artifacts_dir)
            mission_control = f"{otto.url}/runs/{sim.repo(OWNER, REPO).id}/{number}"
            _say(
                f"\nMission Control: {mission_control} (sign in as @{MAINTAINER} on the simulator's page"
                + ("" if keep else "; `.venv/bin/otto demo --keep` keeps it running")
                + ")"
            )
            ok = state is not None and state.phase == RunPhase.WAITING_REVIEW
            if keep:
                _say("Everything keeps running; press Ctrl-C to stop.")
                await asyncio.Event().wait()
            return 0 if ok else 1
    finally:
        world.stop()
        temporal.stop()


async def _follow(client: object, world: LocalWorld, number: int, timeout_s: float) -> RunState | None:
    from temporalio.client import Client

    assert isinstance(client, Client)
    repo_id = world.sim.repo(OWNER, REPO).id
    return await follow_live(client, run_workflow_id(repo_id, number), _say, timeout_s)


async def follow_live(
    client: object, run_id: str, say: Callable[[str], None], timeout_s: float
) -> RunState | None:
    """Print the run's progress as it changes (in words) until it waits for review or ends, no task running
    (None, or the last state seen, when that takes longer than ``timeout_s``)."""
    from temporalio.client import Client

    from app.workflows.run import RunWorkflow

    assert isinstance(client, Client)
    handle = client.get_workflow_handle_for(RunWorkflow.run, run_id)
    deadline = time.monotonic() + timeout_s
    last: list[str] = []
    state: RunState | None = None
    while time.monotonic() < deadline:
        try:
            state = await handle.query(RunWorkflow.status)
        except Exception:  # not started yet
            await asyncio.sleep(0.2)
            continue
        lines = describe(state)
        if lines != last:
            say("\n".join(lines))
            last = lines
        running = any(t.status == TaskStatus.RUNNING for t in state.tasks)
        if (state.phase == RunPhase.WAITING_REVIEW or state.phase.final) and not running:
            return state
        await asyncio.sleep(0.2)
    say(f"The run did not settle within {timeout_s:.0f}s.")
    return state


def where_it_is(state: RunState) -> str:
    """Where the run is, in words (never a state name)."""
    if state.phase == RunPhase.WAITING_REVIEW:
        return "The run has done its work and now waits for your review of its pull requests"
    if state.phase == RunPhase.DONE:
        return "The run is done"
    if state.phase == RunPhase.FAILED:
        return "The run failed"
    if state.phase == RunPhase.CANCELLED:
        return "The run was stopped"
    if state.phase == RunPhase.NEEDS_INFO:
        return "The run needs answers from the issue's author"
    return "The run is still working"


def _report(world: LocalWorld, number: int, state: RunState | None, wall_s: float, artifacts: Path) -> None:
    sim = world.sim
    _say("")
    if state is None:
        _say("No run was started: see the deliveries above.")
        return
    _say(f"{where_it_is(state)} ({wall_s:.1f} s after the label). {state.reason}")
    for r in state.tasks:
        if r.pr_number is None:
            _say(f"  {r.task.id}: no PR ({r.note})")
            continue
        verdict = "verified" if r.status == TaskStatus.PASSED else r.status.value
        _say(f"  {r.task.id}: draft PR #{r.pr_number} from {r.branch} ({verdict}) {r.pr_url}")
    comments = sim.comments(OWNER, REPO, number)
    if comments:
        _say("\nThe status comment on the issue now reads:\n")
        _say(textwrap.indent(comments[0].body, "  | ", lambda _line: True))
    pulls = sorted(sim.pulls(OWNER, REPO), key=lambda p: p.number)
    if pulls:
        first = pulls[0]
        _say(f"\nThe body of draft PR #{first.number} ({first.head_ref} → {first.base_ref}):\n")
        _say(textwrap.indent(first.body or "", "  | ", lambda _line: True))
    repo_dir = sim.repo(OWNER, REPO).path
    _say(
        f"\nWhere to look: the repository is a real git repo: `git -C {repo_dir} log --all --oneline`, "
        f"`git -C {repo_dir} diff main {state.tasks[0].branch if state.tasks else 'main'}`; the agent's "
        f"transcripts, verify logs and summaries are under {artifacts}."
    )
