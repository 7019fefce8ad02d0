"""`otto try PATH "issue text"`: Otto on a local git repository, no GitHub App needed. The repository (its
current HEAD and history) is pushed into an embedded GitHub simulator, the issue opened there and labeled,
the run followed live in the terminal (and in Mission Control while the command runs), and at the end
Otto's branches are fetched back into the repository as remote-tracking refs ``otto/…``
(``refs/remotes/otto/…``; nothing of yours is touched), with a summary of what to look at. Same sandbox and
budget rules as a real installation; a real model needs ``ANTHROPIC_API_KEY``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.contracts.ids import run_workflow_id
from app.dev.demo import follow_live, where_it_is
from app.domain.links import run_url
from app.domain.render import plural
from app.domain.run import RunPhase, RunState, TaskStatus
from app.eval import gitwork
from app.eval.runner import EvalEnv

REMOTE_REFS = "refs/remotes/otto/"


@dataclass
class TryResult:
    state: RunState | None
    refs: dict[str, str] = field(default_factory=dict)  # fetched ref → sha
    mission_control: str | None = None


def repository_head(path: Path) -> tuple[Path, str]:
    path = path.resolve()
    if not (path / ".git").exists():
        raise ValueError(f"{path} is not a git repository (no .git)")
    return path, gitwork.git(["rev-parse", "--verify", "HEAD"], path).strip()


def issue_of(text: str) -> tuple[str, str]:
    """The issue's title (its first line) and body (the whole text)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if not first:
        raise ValueError("the issue text is empty")
    return first[:200], text.strip() + "\n"


async def run_try(
    env: EvalEnv, path: Path, text: str, say: Callable[[str], None] = print, timeout_s: float = 3600.0
) -> TryResult:
    path, head = await asyncio.to_thread(repository_head, path)
    title, body = issue_of(text)
    await env.ensure_owner()
    sim = env.world.sim
    name = path.name or "repo"
    r = sim.create_repo(env.owner, name, {})
    sim.set_permission(env.owner, name, env.maintainer, "write")
    await asyncio.to_thread(gitwork.push_history, path, head, r.path)
    number = sim.create_issue(env.owner, name, title, body, env.maintainer)
    run_id = run_workflow_id(r.id, number)
    link = run_url(env.settings.public_url, run_id)
    say(f"Issue #{number} '{title}' opened on the local simulator for {path.name} ({head[:7]}); labeling it…")
    if link:
        say(f"Mission Control: {link} (sign in as @{env.maintainer} on the simulator's page)")
    sim.add_label(env.owner, name, number, env.settings.trigger_label, env.maintainer)
    state = await follow_live(env.client, run_id, say, timeout_s)
    refs = await asyncio.to_thread(fetch_branches, r.path, path)
    summarize(state, refs, path, say)
    return TryResult(state, refs, link)


def fetch_branches(bare: Path, repo: Path) -> dict[str, str]:
    """Otto's task branches from the simulator into ``repo`` as ``refs/remotes/otto/…``."""
    gitwork.git(["fetch", "--quiet", "--no-tags", str(bare), f"+refs/heads/otto/*:{REMOTE_REFS}*"], repo)
    out = gitwork.git(["for-each-ref", "--format=%(refname) %(objectname)", REMOTE_REFS], repo)
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def summarize(state: RunState | None, refs: dict[str, str], repo: Path, say: Callable[[str], None]) -> None:
    if state is None:
        say("No run was started.")
        return
    say(f"\n{where_it_is(state)}. {state.reason}".rstrip())
    for t in state.tasks:
        ref = f"{REMOTE_REFS}{t.branch.removeprefix('otto/')}"
        short = ref.removeprefix("refs/remotes/")
        if ref in refs:
            verdict = {TaskStatus.PASSED: "its checks pass", TaskStatus.FAILED: "its checks fail"}.get(
                t.status, t.status.value
            )
            say(f"  {t.task.id} {t.task.title}: {short} ({verdict}) — `git log -p HEAD..{short}`")
        else:
            say(f"  {t.task.id} {t.task.title}: no branch ({t.note or t.status.value})")
    u = state.usage
    say(f"  ${u.cost_usd:.4f} for {plural(u.calls, 'model call')}. The branches are in {repo} as otto/….")
    say(
        "  The simulator, and the issue and pull requests on it, end with this command; run it with `--keep` "
        "to approve, comment `/otto retry` or open Mission Control there first."
    )


async def main_try(path: Path, text: str, model: str, scenario: Path | None, keep: bool) -> int:
    """The command: a world under ``PATH/.git/otto-try`` (fresh each time), the run, the summary."""
    import shutil

    import yaml

    from app.eval.main import local_env

    repo, _ = await asyncio.to_thread(repository_head, path)
    script = None
    if scenario is not None:
        script = yaml.safe_load(await asyncio.to_thread(scenario.read_text, encoding="utf-8"))
    root = repo / ".git" / "otto-try"
    await asyncio.to_thread(shutil.rmtree, root, True)
    print("Otto try: starting the local GitHub simulator, Temporal's dev server and Otto…", flush=True)
    async with local_env(root, "scripted:try" if scenario is not None else model) as env:
        env.owner = "local"
        if script is not None:
            env.world.model.load(script)
        result = await run_try(env, repo, text, say=lambda line: print(line, flush=True))
        if keep:
            print("Everything keeps running; press Ctrl-C to stop.", flush=True)
            await asyncio.Event().wait()
    state = result.state
    return 0 if state is not None and state.phase in (RunPhase.WAITING_REVIEW, RunPhase.DONE) else 1
