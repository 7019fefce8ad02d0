"""`otto eval`: each instance run by Otto end to end in a local world (the simulator as GitHub, Otto's real
workflows, sandbox and verification), then scored (:mod:`app.eval.scoring`).

Per instance: a repository ``eval/<instance>`` holding ``base_commit`` and its ancestors only (plus one
commit with the instance's ``.github/otto.yml``), an issue with the ``problem_statement`` labeled by a
maintainer, the run followed until it waits for review (or ends), its PRs' combined change taken as the
prediction, the run stopped, the prediction scored. Results are written per instance as they finish, so an
interrupted eval resumes where it was and never runs a finished instance again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from temporalio.client import Client

from app.contracts.ids import run_workflow_id
from app.dev.local import LocalWorld
from app.domain.links import run_url
from app.domain.repo_config import parse_repo_config
from app.domain.run import RunPhase, RunState, TaskStatus
from app.eval import gitwork, scripted
from app.eval.instances import Instance
from app.eval.scoring import SCORE_BRANCH, Score, run_tests
from app.runtime import Services
from app.settings import Settings

log = logging.getLogger(__name__)

SETTINGS_FILE = ".github/otto.yml"
_EXIT = re.compile(r"\[exit code [^\]]* after ([0-9.]+)s\]")


class InstanceResult(BaseModel):
    instance_id: str
    resolved: bool = False
    error: str = ""  # the harness could not run or score it (not Otto's failure to resolve it)
    budget_hit: bool = False  # the run stopped at its budget (the eval's remaining spend)
    model_patch: str = ""
    run_id: str = ""
    phase: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    model_calls: int = 0
    wall_s: float = 0.0
    model_s: float = 0.0
    checks_s: float = 0.0
    otto_s: float = 0.0
    attempts: int = 0
    fix_rounds: int = 0
    pilot_decisions: list[str] = Field(default_factory=list)  # "t1: retry", …
    replans: int = 0
    pull_requests: int = 0
    mission_control: str | None = None
    failed_tests: list[str] = Field(default_factory=list)
    score_log_tail: str = ""


@dataclass
class EvalOptions:
    instances: list[Instance]
    repos: Path
    model: str  # a model name, or scripted:<behaviour>
    out: Path
    pilot: bool | None = None  # None: the instance's setting
    parallel: int = 1
    budget_usd: float | None = None
    instance_timeout_s: float = 1800.0
    progress: Callable[[str], None] = print

    @property
    def scripted(self) -> str | None:
        return self.model.removeprefix("scripted:") if self.model.startswith("scripted:") else None


@dataclass
class EvalEnv:
    """Where the eval's runs happen: a local world and a running Otto (its Temporal client, settings)."""

    world: LocalWorld
    settings: Settings
    client: Client
    owner: str = "eval"  # the organization the instances' repositories are made in
    services: Services = field(init=False)
    _setup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _ready: bool = False

    def __post_init__(self) -> None:
        self.services = Services.from_settings(self.settings)

    async def ensure_owner(self) -> None:
        async with self._setup_lock:
            if self._ready:
                return
            sim = self.world.sim
            sim.create_user(self.owner, type="Organization")
            sim.create_user(self.maintainer)
            sim.install_app(self.world.app_id, self.owner)
            self._ready = True

    @property
    def maintainer(self) -> str:
        return f"{self.owner}-maintainer"


def result_path(out: Path, instance_id: str) -> Path:
    return out / "instances" / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', instance_id)}.json"


def finished(out: Path, instance_id: str) -> InstanceResult | None:
    path = result_path(out, instance_id)
    return InstanceResult.model_validate_json(path.read_text()) if path.exists() else None


def repo_name(inst: Instance) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", inst.instance_id).strip("-.")[:90] or "instance"


def settings_yaml(
    inst: Instance, pilot: bool | None, budget_usd: float | None, behaviour: str | None = None
) -> str:
    values: dict[str, Any] = dict(inst.otto or {})
    if behaviour == "first-fails":
        values["max_fix_rounds"] = 0  # the scripted failure must reach the gate
    if pilot is not None:
        values["pilot"] = pilot
    if budget_usd is not None:
        values["budget_usd"] = min(float(values.get("budget_usd", budget_usd)), budget_usd)
    return yaml.safe_dump(values, sort_keys=True) if values else "{}\n"


async def follow(client: Client, run_id: str, timeout_s: float) -> RunState | None:
    """The run's state once it waits for review or has ended (None: it never got there in time)."""
    from app.workflows.run import RunWorkflow

    handle = client.get_workflow_handle_for(RunWorkflow.run, run_id)
    deadline = time.monotonic() + timeout_s
    state: RunState | None = None
    while time.monotonic() < deadline:
        try:
            state = await handle.query(RunWorkflow.status)
        except Exception:  # not started yet
            state = None
        settled = state is not None and (state.phase == RunPhase.WAITING_REVIEW or state.phase.final)
        if settled and state is not None and not any(r.status.value == "running" for r in state.tasks):
            return state
        await asyncio.sleep(0.25)
    return state


def checks_seconds(env: EvalEnv, run_id: str) -> float:
    """The repository's checks' time in the run, from the verify logs in the artifact store."""
    store = env.services.store
    total = 0.0
    prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-") + "/"
    for info in store.list(prefix):
        if info.key.endswith(".log") and "verify" in info.key:
            total += sum(float(x) for x in _EXIT.findall(store.get_text(info.key) or ""))
    return total


async def run_instance(
    env: EvalEnv, inst: Instance, opts: EvalOptions, budget_usd: float | None
) -> InstanceResult:
    await env.ensure_owner()
    sim = env.world.sim
    source = opts.repos / inst.repo_dir_name
    name = repo_name(inst)
    started = time.monotonic()
    r = sim.create_repo(env.owner, name, {})
    sim.set_permission(env.owner, name, env.maintainer, "write")
    await asyncio.to_thread(gitwork.push_history, source, inst.base_commit, r.path)
    config_text = settings_yaml(inst, opts.pilot, budget_usd, opts.scripted)
    main = sim.push_commit(
        env.owner, name, "main", {SETTINGS_FILE: config_text}, "Otto's settings for this eval", env.maintainer
    )
    behaviour = opts.scripted
    if behaviour is not None:
        changes = await asyncio.to_thread(gitwork.changed_files, source, inst.base_commit, inst.patch)
        number_next = max((i.number for i in sim.repo(env.owner, name).issues.values()), default=0) + 1
        env.world.model.load(
            scripted.scenario(behaviour, inst, changes), run=f"{env.owner}/{name}#{number_next}"
        )
    number = sim.create_issue(env.owner, name, inst.title, inst.problem_statement, env.maintainer)
    sim.add_label(env.owner, name, number, env.settings.trigger_label, env.maintainer)
    run_id = run_workflow_id(r.id, number)
    state = await follow(env.client, run_id, opts.instance_timeout_s)
    wall = time.monotonic() - started
    if state is not None and not state.phase.final:
        sim.comment(env.owner, name, number, "/otto stop", env.maintainer)
        await follow(env.client, run_id, 120)
    result = InstanceResult(instance_id=inst.instance_id, run_id=run_id, wall_s=round(wall, 2))
    result.mission_control = run_url(env.settings.public_url, run_id)
    if state is None:
        result.error = f"the run did not settle within {opts.instance_timeout_s:g}s"
        return result
    result.phase = state.phase.value
    result.budget_hit = "budget is spent" in state.reason or any(
        "budget is spent" in t.note for t in state.tasks
    )
    u = state.usage
    result.cost_usd, result.tokens, result.model_calls = round(u.cost_usd, 6), u.total_tokens, u.calls
    result.model_s = round(u.model_s, 2)
    result.checks_s = round(checks_seconds(env, run_id), 2)
    result.attempts = sum(t.attempts for t in state.tasks)
    result.fix_rounds = sum(t.fix_rounds for t in state.tasks)
    result.pilot_decisions = [f"{d.task_id}: {d.action}" for dec in state.decisions for d in dec.tasks]
    result.replans = sum(1 for n in state.notices if n.startswith("🗺️ Replanned"))
    kept = [t for t in state.tasks if t.status not in (TaskStatus.SKIPPED, TaskStatus.ABANDONED)]
    with_prs = sorted((t for t in kept if t.pr_number and t.head_sha), key=lambda t: t.batch)
    result.pull_requests = len(with_prs)
    heads = [t.head_sha for t in with_prs if t.head_sha]
    patch = (
        await asyncio.to_thread(gitwork.combined_change, r.path, main, heads, [SETTINGS_FILE])
        if heads
        else ""
    )
    result.model_patch = patch or ""
    score = await score_patch(env, inst, r.path, r.id, name, result.model_patch, config_text)
    result.resolved, result.failed_tests, result.score_log_tail = score.resolved, score.failed, score.log_tail
    result.otto_s = round(max(0.0, wall - result.model_s - result.checks_s), 2)
    return result


async def score_patch(
    env: EvalEnv, inst: Instance, bare: Path, repo_id: int, name: str, patch: str, config_text: str
) -> Score:
    wanted = [*inst.FAIL_TO_PASS, *inst.PASS_TO_PASS]
    if not patch.strip():
        return Score(resolved=False, applied=False, failed=wanted)
    applied = await asyncio.to_thread(
        gitwork.commit_on, bare, inst.base_commit, [patch, inst.test_patch], SCORE_BRANCH, "Scoring"
    )
    if not applied:
        return Score(
            resolved=False,
            applied=False,
            failed=wanted,
            log_tail="the change or the test patch does not apply",
        )
    sim = env.world.sim
    installation = sim.installation_for(env.world.app_id, env.owner)
    assert installation is not None
    inst_id = installation.id
    clone_url = f"{env.world.sim_server.url}/{env.owner}/{name}.git"
    return await run_tests(
        env.services, inst, clone_url, inst_id, f"{env.owner}/{name}", parse_repo_config(config_text)
    )


async def run_eval(env: EvalEnv, opts: EvalOptions) -> list[InstanceResult]:
    """Every instance not finished before, at most ``opts.parallel`` at once, none started once the total
    spend reaches ``opts.budget_usd``. Returns every instance's result (finished earlier or now)."""
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "instances").mkdir(exist_ok=True)
    results: dict[str, InstanceResult] = {}
    for inst in opts.instances:
        done = finished(opts.out, inst.instance_id)
        if done is not None:
            results[inst.instance_id] = done
    spent = sum(r.cost_usd for r in results.values())
    exhausted = any(r.budget_hit for r in results.values())
    gate = asyncio.Semaphore(max(1, opts.parallel))
    lock = asyncio.Lock()
    total = len(opts.instances)

    async def one(inst: Instance) -> None:
        nonlocal spent, exhausted
        async with gate:
            async with lock:
                left = None if opts.budget_usd is None else opts.budget_usd - spent
                if left is not None and (left <= 0 or exhausted):
                    opts.progress(
                        f"[{len(results)}/{total}] {inst.instance_id}: not run, the eval's budget is spent"
                    )
                    return
            try:
                result = await run_instance(env, inst, opts, left)
            except Exception as e:  # the harness's failure, not Otto's: said, recorded, the eval goes on
                log.warning("instance %s could not be run", inst.instance_id, exc_info=True)
                result = InstanceResult(instance_id=inst.instance_id, error=f"{type(e).__name__}: {e}"[:500])
            async with lock:
                spent += result.cost_usd
                exhausted = exhausted or (opts.budget_usd is not None and result.budget_hit)
                results[inst.instance_id] = result
                result_path(opts.out, inst.instance_id).write_text(result.model_dump_json(indent=1) + "\n")
                verdict = "error" if result.error else ("resolved" if result.resolved else "unresolved")
                opts.progress(
                    f"[{len(results)}/{total}] {inst.instance_id}: {verdict} · ${result.cost_usd:.4f} · "
                    f"{result.wall_s:.0f}s · {result.attempts} attempt(s)"
                    + (f" · {result.error}" if result.error else "")
                )

    await asyncio.gather(*(one(i) for i in opts.instances if i.instance_id not in results))
    return [results[i.instance_id] for i in opts.instances if i.instance_id in results]


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
