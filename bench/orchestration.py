"""Orchestration overhead: a 12-task plan, the scripted model answering at once (each task's agent creates one
small file and finishes), verify ``true``, against a real repository with thousands of files (Django's
sdist, downloaded once with ``pip download --no-deps --no-binary :all:`` into ``.cache/bench/src``).

Per task: the ``execute_task`` activity's wall time (from Temporal's history: started → completed) minus the
scripted model's server-side time for that task's requests. That overhead covers the mirror fetch, the
worktree, the agent's tool calls, the commit, the checks, the push, the draft PR and the check run.
Compared in the same run with the naive way: per task a fresh ``git clone`` of the same repository over the
simulator's smart HTTP, write the file, commit, push a branch (no PR, no checks: a lower bound).

Otto runs as ``otto serve`` (web + worker, one process) against the simulator and scripted model in this
process and Temporal's dev server; ``max_parallel_tasks`` is Otto's default (2).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CACHE,
    VENV_BIN,
    bench_dir,
    embedded_temporal,
    local_world,
    ms,
    otto_process,
    percentile,
    run_main,
    say,
    table,
    targets,
    verdict,
    wait_settled,
)

SDIST = ("Django", "5.1.4")
OWNER, REPO, MAINTAINER = "big-org", "django", "mona"
OTTO_YML = 'verify: "true"\nmax_tasks: 50\npilot: false\n'


# --------------------------------------------------------------------------------------------- the repo


def source_tree() -> Path:
    """Django's sdist, unpacked under ``.cache/bench/src`` (downloaded once); else an installed package."""
    name, version = SDIST
    src_root = CACHE / "src"
    tree = src_root / f"{name}-{version}"
    if tree.is_dir():
        return tree
    src_root.mkdir(parents=True, exist_ok=True)
    say(f"  downloading the {name} {version} sdist with pip into .cache/bench/src …")
    proc = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(src_root),
        ],
        capture_output=True,
        timeout=600,
        check=False,
    )
    archives = sorted(src_root.glob(f"{name}-{version}.tar.gz")) + sorted(
        src_root.glob(f"{name.lower()}-{version}.tar.gz")
    )
    if proc.returncode == 0 and archives:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(src_root, filter="data")
        if tree.is_dir():
            return tree
    # offline fallback: the anthropic SDK's installed source (~3,000 files)
    import anthropic

    fallback = src_root / "anthropic-installed"
    if not fallback.is_dir():
        say("  (download failed; using the installed anthropic package's source instead)")
        shutil.copytree(Path(anthropic.__file__).parent, fallback / "anthropic")
    return fallback


def _git(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    from app.dev.simulator.gitrepo import git_env

    proc = subprocess.run(
        ["git", *args],
        capture_output=True,
        env=(env or git_env()),
        cwd=cwd,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout.decode().strip()


def seed_repo(sim: Any, tree: Path) -> tuple[int, int]:
    """The simulator's repository with ``tree`` as its first commit (one ``git add -A`` into the bare repo
    instead of a subprocess per file), then ``.github/otto.yml``. Returns (files, bytes)."""
    from app.dev.simulator import gitrepo

    repo = sim.create_repo(OWNER, REPO, {})
    owner = sim.identity(sim.user(OWNER))
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        env = gitrepo.git_env(owner) | {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        base = ["--git-dir", str(repo.path), "--work-tree", str(tree)]
        _git(*base, "add", "-A", ".", env=env)
        tree_sha = _git(*base, "write-tree", env=env)
    first = gitrepo.commit_tree(repo.path, tree_sha, [], f"Import {tree.name}", owner)
    head = gitrepo.commit_files(repo.path, first, {".github/otto.yml": OTTO_YML}, "Add otto.yml", owner)
    gitrepo.update_ref(repo.path, "refs/heads/main", head)
    files = _git("--git-dir", str(repo.path), "ls-tree", "-r", "--name-only", "main").count("\n") + 1
    size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    return files, size


# --------------------------------------------------------------------------------------------- scenario


def task_ids(n: int) -> list[str]:
    return [f"t{i:02d}" for i in range(1, n + 1)]


def scenario(n: int) -> dict[str, Any]:
    tasks = [
        {
            "id": t,
            "title": f"Add note {t}",
            "intent": f"Add the file otto_bench/{t}.txt with one line.",
            "acceptance": [f"otto_bench/{t}.txt exists"],
            "files": [f"otto_bench/{t}.txt"],
            "depends_on": [],
        }
        for t in task_ids(n)
    ]
    agent = {
        t: [
            {
                "tool_use": {
                    "name": "str_replace_based_edit_tool",
                    "input": {"command": "create", "path": f"otto_bench/{t}.txt", "file_text": f"note {t}\n"},
                }
            },
            {"text": f"Added otto_bench/{t}.txt."},
        ]
        for t in task_ids(n)
    }
    return {
        "classify": [{"json": {"actionable": True, "summary": f"Add {n} notes.", "questions": []}}],
        "plan": [{"json": {"summary": f"{n} independent notes.", "tasks": tasks}}],
        "agent": agent,
    }


# --------------------------------------------------------------------------------------------- history


def activity_timings(events: list[Any]) -> list[dict[str, Any]]:
    """Per activity from a workflow history: type, task id (from its input), queued and running seconds."""
    scheduled: dict[int, dict[str, Any]] = {}
    for e in events:
        kind = e.WhichOneof("attributes")
        at = e.event_time.ToDatetime().timestamp()
        if kind == "activity_task_scheduled_event_attributes":
            a = e.activity_task_scheduled_event_attributes
            task = None
            if a.input.payloads:
                try:
                    data = json.loads(a.input.payloads[0].data)
                    task = data.get("task", {}).get("id") if isinstance(data, dict) else None
                except ValueError:
                    task = None
            scheduled[e.event_id] = {"type": a.activity_type.name, "task": task, "scheduled": at}
        elif kind == "activity_task_started_event_attributes":
            scheduled[e.activity_task_started_event_attributes.scheduled_event_id]["started"] = at
        elif kind == "activity_task_completed_event_attributes":
            scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]["completed"] = at
    out = []
    for rec in scheduled.values():
        if "started" in rec and "completed" in rec:
            rec["queued_s"] = rec["started"] - rec["scheduled"]
            rec["running_s"] = rec["completed"] - rec["started"]
            out.append(rec)
    return out


# --------------------------------------------------------------------------------------------- naive


def naive_tasks(clone_url: str, token: str, n: int, scratch: Path) -> list[tuple[float, float]]:
    """Per task: fresh ``git clone`` over smart HTTP, one file, commit, push. (clone s, total s) each."""
    from app.dev.simulator.gitrepo import git_env
    from app.workspace.git import auth_header

    env = git_env() | {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraheader",
        "GIT_CONFIG_VALUE_0": auth_header(token),
        "GIT_AUTHOR_NAME": MAINTAINER,
        "GIT_AUTHOR_EMAIL": f"{MAINTAINER}@example.com",
        "GIT_COMMITTER_NAME": MAINTAINER,
        "GIT_COMMITTER_EMAIL": f"{MAINTAINER}@example.com",
    }
    out = []
    for i in range(n):
        work = scratch / f"naive-{i}"
        started = time.perf_counter()
        _git("clone", "--quiet", clone_url, str(work), env=env)
        cloned = time.perf_counter()
        (work / "otto_bench").mkdir(exist_ok=True)
        (work / "otto_bench" / f"naive{i}.txt").write_text(f"note {i}\n")
        _git("add", "-A", env=env, cwd=work)
        _git("commit", "--quiet", "-m", f"naive {i}", env=env, cwd=work)
        _git("push", "--quiet", "origin", f"HEAD:refs/heads/naive/{i}", env=env, cwd=work)
        done = time.perf_counter()
        out.append((cloned - started, done - started))
        shutil.rmtree(work, ignore_errors=True)
    return out


def workspace_stages(clone_url: str, token: str, n: int, scratch: Path) -> list[dict[str, float]]:
    """Otto's own git steps for one task (``app.workspace.Workspace``), one task at a time, after a first
    sync: where a task's time goes, without the worker around it (the checkout is warm from the 2nd task)."""
    from app.workspace import GitIdentity, Workspace

    ws = Workspace(scratch / "ws-mirrors", scratch / "ws-checkouts")
    who = GitIdentity(name="otto[bot]", email="1+otto[bot]@users.noreply.github.com")
    ws.sync_mirror(f"{OWNER}/{REPO}", clone_url, token)
    out = []
    for i in range(n):
        marks = [("start", time.perf_counter())]
        mirror = ws.sync_mirror(f"{OWNER}/{REPO}", clone_url, token)
        marks.append(("sync mirror", time.perf_counter()))
        wt = ws.create_worktree(mirror, f"stage-{i}", "main", [], None, who)
        marks.append(("checkout", time.perf_counter()))
        (wt.path / "otto_bench").mkdir(exist_ok=True)
        (wt.path / "otto_bench" / f"stage{i}.txt").write_text(f"note {i}\n")
        ws.commit_all(wt, f"stage {i}", who)
        marks.append(("commit", time.perf_counter()))
        ws.push(wt, clone_url, token, f"stage/{i}", None)
        marks.append(("push", time.perf_counter()))
        ws.changed_files(wt, "main")
        marks.append(("changed files", time.perf_counter()))
        ws.remove_worktree(wt)
        marks.append(("release checkout", time.perf_counter()))
        out.append({name: t - marks[k][1] for k, (name, t) in enumerate(marks[1:])})
    return out


# --------------------------------------------------------------------------------------------- main


async def run(quick: bool) -> int:
    from temporalio.client import Client

    from app.domain.run import RunPhase
    from app.engine import connect
    from app.workflows.run import RunWorkflow

    n_tasks = 4 if quick else 12
    n_naive = 2 if quick else 12
    root = bench_dir("orchestration")
    tree = await asyncio.to_thread(source_tree)
    async with embedded_temporal(root / "temporal") as (address, _pid):
        with local_world(root / "world", scenario(n_tasks)) as (world, timed):
            sim = world.sim
            sim.create_user(OWNER, type="Organization")
            sim.create_user(MAINTAINER)
            started = time.perf_counter()
            files, size = await asyncio.to_thread(seed_repo, sim, tree)
            say(
                f"Repository {OWNER}/{REPO}: {tree.name}, {files:,} files, {size / 2**20:.1f} MiB "
                f"(seeded in {time.perf_counter() - started:.1f}s)"
            )
            sim.set_permission(OWNER, REPO, MAINTAINER, "write")
            sim.install_app(world.app_id, OWNER)
            repo_id = sim.repo(OWNER, REPO).id
            client: Client = await connect(address, "default")
            async with otto_process(world, root, address, max_tasks=n_tasks) as (_proc, _url):
                number = sim.create_issue(
                    OWNER, REPO, f"Add {n_tasks} notes", "One file per task.", MAINTAINER
                )
                t0 = time.perf_counter()
                delivery = await asyncio.to_thread(sim.add_label, OWNER, REPO, number, "otto", MAINTAINER)
                say(f"Labeled issue #{number}: Otto answered {delivery.status_code}; waiting for the run …")
                states = await wait_settled(client, repo_id, [number], 120 if quick else 300)
                run_wall = time.perf_counter() - t0
                state = states.get(number)
                handle = client.get_workflow_handle_for(RunWorkflow.run, f"otto/{repo_id}/{number}")
                history = await handle.fetch_history()
            token = sim.create_user_token(MAINTAINER)
            clone_url = f"{world.sim_server.url}/{OWNER}/{REPO}.git"
            say(f"Naive: {n_naive} fresh clones over smart HTTP …")
            naive = await asyncio.to_thread(naive_tasks, clone_url, token, n_naive, root)
            say("Otto's git steps alone, one task at a time …")
            stages = await asyncio.to_thread(workspace_stages, clone_url, token, 2 if quick else 4, root)

    if state is None or state.phase != RunPhase.WAITING_REVIEW:
        say(
            f"The run did not reach waiting_review: {state.phase.value if state else 'no run'} "
            f"{state.reason if state else ''}"
        )
        return 1
    timings = activity_timings(list(history.events))
    model_s = timed.seconds_by_key("agent")
    rows = []
    overheads = []
    for rec in sorted((r for r in timings if r["type"] == "execute_task"), key=lambda r: r["task"] or ""):
        model = model_s.get(rec["task"], 0.0)
        overhead = rec["running_s"] - model
        overheads.append(overhead)
        rows.append([rec["task"], ms(rec["queued_s"]), ms(rec["running_s"]), ms(model), ms(overhead)])
    table(
        f"Otto: execute_task per task ({n_tasks} tasks, {files:,}-file repository, 2 in parallel)",
        ["task", "queued ms", "activity ms", "model ms", "overhead ms"],
        rows,
    )
    listing = [r for r in timings if r["type"] == "list_repo_files"]
    tasks_span = [r for r in timings if r["type"] == "execute_task"]
    span = max(r["completed"] for r in tasks_span) - min(r["started"] for r in tasks_span)
    other = sorted({r["type"] for r in timings} - {"execute_task"})
    other_ms = {t: sum(r["running_s"] for r in timings if r["type"] == t) * 1000 for t in other}
    say(
        f"\nRun: label → waiting_review {run_wall:.1f}s; first mirror sync (list_repo_files) "
        f"{listing[0]['running_s'] if listing else 0:.2f}s; tasks' span {span:.1f}s = "
        f"{span / n_tasks:.2f}s per task amortised; model calls {len(timed.calls)}, "
        f"{sum(c.seconds for c in timed.calls) * 1000:.0f} ms server-side in all."
    )
    say("Other activities (ms, summed): " + ", ".join(f"{k} {v:.0f}" for k, v in other_ms.items()))

    stage_names = list(stages[0])
    table(
        "Otto's git steps per task alone (Workspace API, sequential, same repository; ms)",
        ["task", *stage_names, "sum"],
        [[f"#{i}", *(ms(st[k]) for k in stage_names), ms(sum(st.values()))] for i, st in enumerate(stages)],
    )
    naive_total = [t for _c, t in naive]
    table(
        "Naive: fresh clone per task over smart HTTP (+ file, commit, push)",
        ["task", "clone ms", "total ms"],
        [[f"naive {i}", ms(c), ms(t)] for i, (c, t) in enumerate(naive)],
    )
    mean_overhead = sum(overheads) / len(overheads)
    p90 = percentile(overheads, 90) or 0.0
    mean_naive = sum(naive_total) / len(naive_total)
    speedup = mean_naive / mean_overhead if mean_overhead > 0 else 0.0
    targets(
        [
            (
                "Otto overhead per task (mean; p90; max)",
                "< 1 s",
                f"{mean_overhead:.2f}s; {p90:.2f}s; {max(overheads):.2f}s",
                verdict(mean_overhead < 1.0, f"mean {mean_overhead:.2f}s per task"),
            ),
            (
                "naive fresh clone per task / Otto",
                "≥ 5×",
                f"{mean_naive:.2f}s / {mean_overhead:.2f}s = {speedup:.1f}×",
                verdict(speedup >= 5, f"{speedup:.1f}×"),
            ),
        ]
    )
    say(
        "\nOverhead = activity wall time − the scripted model's server-side time for that task (the SDK's "
        "client-side time stays in the overhead). Both tasks of a pair ran at once on 2 cores, with the "
        "simulator (git http-backend) and Temporal on the same machine."
    )
    return 0


def main(argv: list[str]) -> int:
    return run_main(lambda: run("--quick" in argv))
