"""`otto eval` end to end on a small source repository: scripted models that prove the scoring (the oracle
resolves everything, the null model nothing), both forms of FAIL_TO_PASS, a resumed eval, the budget cap,
the hidden test patch kept out of every model request, artifact and the repository Otto works on, the
pilot's A/B, and `otto try` on a local repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.artifacts import store_from_settings
from app.dev.demo import ISSUE_BODY, ISSUE_TITLE, SAMPLE_REPO
from app.domain.run import RunPhase
from app.eval.instances import Instance, load_instances
from app.eval.report import ab_table, write_outputs
from app.eval.runner import EvalEnv, EvalOptions, run_eval
from app.eval.trying import run_try
from tests.e2e import Otto, demo_scenario

CANARY = "CANARY-TEST-PATCH-7f3a"
CORE = """def greet(name: str) -> str:
    return f"Hello, {name}!"


def shout(name: str) -> str:
    return greet(name)


def whisper(name: str) -> str:
    return greet(name)
"""
FIXED_SHOUT = CORE.replace(
    "def shout(name: str) -> str:\n    return greet(name)",
    "def shout(name: str) -> str:\n    return greet(name).upper()",
)
FIXED_WHISPER = CORE.replace(
    "def whisper(name: str) -> str:\n    return greet(name)",
    "def whisper(name: str) -> str:\n    return greet(name).lower()",
)
FILES = {
    "greeter/__init__.py": "",
    "greeter/core.py": CORE,
    "tests/test_core.py": (
        'from greeter.core import greet\n\n\ndef test_greet():\n    assert greet("Ada") == "Hello, Ada!"\n'
    ),
}
SHOUT_TEST = (
    f"# {CANARY}\nfrom greeter.core import shout\n\n\ndef test_shout():\n"
    '    assert shout("Ada") == "HELLO, ADA!"\n'
)
WHISPER_TEST = (
    f"# {CANARY}\nfrom greeter.core import whisper\n\n\ndef test_whisper():\n"
    '    assert whisper("Ada") == "hello, ada!"\n'
)


def sh(*args: str, cwd: Path, stdin: str | None = None) -> str:
    env = {
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@x",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@x",
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
    }
    return subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=True
    ).stdout


def write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def diff(repo: Path, files: dict[str, str]) -> str:
    """The patch that turns HEAD's work tree into ``files`` (left uncommitted, then undone)."""
    write(repo, files)
    sh("git", "add", "-A", cwd=repo)
    out = sh("git", "diff", "--cached", cwd=repo)
    sh("git", "reset", "-q", "--hard", "HEAD", cwd=repo)
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Instance]]:
    """``repos/acme__greeter`` with a base commit (shout and whisper broken) and a later commit that fixes
    shout (the future, which Otto must never see), and two instances on the base commit."""
    repos = tmp_path_factory.mktemp("repos")
    repo = repos / "acme__greeter"
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    write(repo, FILES)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "base", cwd=repo)
    base = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    shout_patch = diff(repo, {"greeter/core.py": FIXED_SHOUT})
    whisper_patch = diff(repo, {"greeter/core.py": FIXED_WHISPER})
    shout_tests = diff(repo, {"tests/test_shout.py": SHOUT_TEST})
    whisper_tests = diff(repo, {"tests/test_whisper.py": WHISPER_TEST})
    write(repo, {"greeter/core.py": FIXED_SHOUT, "FUTURE.md": "the fix, later\n"})
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "the future", cwd=repo)
    common = {
        "repo": "acme/greeter",
        "base_commit": base,
        "otto": {"verify": "python -m pytest -q", "max_fix_rounds": 0},
    }
    lines = [
        {
            **common,
            "instance_id": "acme__greeter-1",
            "problem_statement": (
                "shout() doesn't shout\n\n`shout('Ada')` returns 'Hello, Ada!'; it should be in capitals."
            ),
            "patch": shout_patch,
            "test_patch": shout_tests,
            "FAIL_TO_PASS": ["tests/test_shout.py::test_shout"],
            "PASS_TO_PASS": ["tests/test_core.py::test_greet"],
        },
        {
            **common,
            "instance_id": "acme__greeter-2",
            "problem_statement": "whisper() is too loud\n\nIt should return the greeting in lower case.",
            "patch": whisper_patch,
            "test_patch": whisper_tests,
            "FAIL_TO_PASS": json.dumps(["tests/test_whisper.py::test_whisper"]),  # the dataset's string form
            "PASS_TO_PASS": json.dumps(["tests/test_core.py::test_greet"]),
        },
    ]
    jsonl = repos / "instances.jsonl"
    jsonl.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return repos, load_instances(jsonl)


def options(
    source: tuple[Path, list[Instance]], model: str, out: Path, said: list[str], **more: Any
) -> EvalOptions:
    repos, instances = source
    return EvalOptions(
        instances=instances,
        repos=repos,
        model=model,
        out=out,
        instance_timeout_s=120,
        progress=said.append,
        **more,
    )


def env_of(otto: Otto, owner: str) -> EvalEnv:
    return EvalEnv(otto.world, otto.settings, otto.client, owner=owner)


async def test_the_oracle_resolves_every_instance_and_nothing_of_the_test_patch_reaches_otto(
    otto: Otto, source: tuple[Path, list[Instance]], tmp_path: Path
) -> None:
    said: list[str] = []
    opts = options(source, "scripted:oracle", tmp_path / "out", said, parallel=2)
    env = env_of(otto, "eval-oracle")
    results = await run_eval(env, opts)
    assert [(r.instance_id, r.resolved, r.error) for r in results] == [
        ("acme__greeter-1", True, ""),
        ("acme__greeter-2", True, ""),
    ]
    assert all(r.pull_requests == 1 and r.attempts == 1 and r.cost_usd > 0 for r in results)
    assert "return greet(name).upper()" in results[0].model_patch
    data = write_outputs(opts.out, results, 2, opts.model, None)
    assert (data["total"], data["resolved"], data["resolved_ids"]) == (
        2,
        2,
        ["acme__greeter-1", "acme__greeter-2"],
    )
    predictions = [json.loads(x) for x in (opts.out / "predictions.jsonl").read_text().splitlines()]
    assert [p["instance_id"] for p in predictions] == ["acme__greeter-1", "acme__greeter-2"]
    assert all(p["model_name_or_path"] == "otto+scripted:oracle" and p["model_patch"] for p in predictions)
    report = (opts.out / "report.md").read_text()
    assert report.startswith("# Otto eval: 2 of 2 resolved (100%)")
    assert (opts.out / "resolved_vs_cost.png").read_bytes().startswith(b"\x89PNG")
    assert len(said) == 2
    # the hidden tests: in no model request, no artifact, no branch Otto could read
    assert all(CANARY not in json.dumps(q.body) for q in otto.world.model.requests)
    store = store_from_settings(otto.settings)
    for r in results:
        prefix = r.run_id.replace("/", "-") + "/"
        keys = [i.key for i in store.list(prefix)]
        assert keys, prefix
        assert all(CANARY not in (store.get_text(k) or "") for k in keys)
    # Otto's repository holds the base commit and its ancestors, none of the future
    bare = otto.sim.repo("eval-oracle", "acme__greeter-1").path
    log = sh("git", "log", "--all", "--format=%s", cwd=bare)
    assert "the future" not in log
    assert "FUTURE.md" not in sh("git", "log", "--all", "--name-only", "--format=", cwd=bare)


async def test_the_null_model_resolves_nothing_and_a_rerun_resumes_without_running_again(
    otto: Otto, source: tuple[Path, list[Instance]], tmp_path: Path
) -> None:
    said: list[str] = []
    out = tmp_path / "out"
    env = env_of(otto, "eval-null")
    first = options(source, "scripted:null", out, said)
    first.instances = first.instances[:1]  # interrupted after one instance
    await run_eval(env, first)
    assert len(said) == 1
    stamp = (out / "instances" / "acme__greeter-1.json").stat().st_mtime_ns
    results = await run_eval(env, options(source, "scripted:null", out, said))
    assert len(said) == 2  # only the second instance ran now
    assert said[1].startswith("[2/2] acme__greeter-2: unresolved")
    assert (out / "instances" / "acme__greeter-1.json").stat().st_mtime_ns == stamp
    assert [(r.resolved, r.error, r.pull_requests) for r in results] == [(False, "", 0), (False, "", 0)]
    assert all(set(r.failed_tests) >= {"tests/test_core.py::test_greet"} for r in results)


async def test_the_budget_cap_stops_starting_instances(
    otto: Otto, source: tuple[Path, list[Instance]], tmp_path: Path
) -> None:
    said: list[str] = []
    env = env_of(otto, "eval-budget")
    results = await run_eval(
        env, options(source, "scripted:oracle", tmp_path / "out", said, budget_usd=0.0001)
    )
    assert len(results) == 1  # the first reached the cap; the second never started
    assert results[0].budget_hit
    assert not results[0].resolved
    assert said[1] == "[1/2] acme__greeter-2: not run, the eval's budget is spent"
    data = write_outputs(tmp_path / "out", results, 2, "scripted:oracle", None)
    assert data["not_run"] == 1


async def test_the_pilots_a_b_with_a_first_attempt_that_fails(
    otto: Otto, source: tuple[Path, list[Instance]], tmp_path: Path
) -> None:
    """Scripted: the fix's first attempt breaks the checks. Pilot on: it retries the task (one decision per
    instance); off: the replanner replaces the tasks. Both recover; what each did is counted."""
    reports = {}
    for pilot in (True, False):
        said: list[str] = []
        out = tmp_path / ("on" if pilot else "off")
        env = env_of(otto, f"eval-ab-{'on' if pilot else 'off'}")
        results = await run_eval(
            env, options(source, "scripted:first-fails", out, said, pilot=pilot, parallel=2)
        )
        reports[pilot] = write_outputs(out, results, 2, "scripted:first-fails", pilot)
    on, off = reports[True], reports[False]
    assert (on["resolved"], off["resolved"]) == (2, 2)
    assert [i["pilot_decisions"] for i in on["instances"].values()] == [["t1: retry"], ["t1: retry"]]
    assert [i["replans"] for i in on["instances"].values()] == [0, 0]
    assert [i["pilot_decisions"] for i in off["instances"].values()] == [[], []]
    assert [i["replans"] for i in off["instances"].values()] == [1, 1]
    assert [i["attempts"] for i in on["instances"].values()] == [3, 3]  # t1 twice, t2
    assert [i["attempts"] for i in off["instances"].values()] == [3, 3]  # t1, then r1 and r2
    assert [i["pull_requests"] for i in off["instances"].values()] == [2, 2]  # t1's broken PR left out
    table = ab_table(on, off)
    assert "| on | 2 of 2 |" in table
    assert "| 2 | 2 retry | 0 |" in table  # fired on both instances, retried twice, no replan
    assert "| off | 2 of 2 |" in table
    assert table.rstrip().endswith("| 0 | — | 2 |")


async def test_otto_try_runs_an_issue_on_a_local_repository_and_fetches_its_branches_back(
    otto: Otto, tmp_path: Path
) -> None:
    repo = tmp_path / "greeter"
    repo.mkdir()
    sh("git", "init", "-q", "-b", "trunk", cwd=repo)
    write(repo, SAMPLE_REPO)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "mine", cwd=repo)
    mine = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    env = env_of(otto, "try-local")
    otto.world.model.load(demo_scenario(), run="try-local/greeter#1")
    said: list[str] = []
    result = await run_try(env, repo, f"{ISSUE_TITLE}\n\n{ISSUE_BODY}", say=said.append, timeout_s=120)
    assert result.state is not None
    assert result.state.phase == RunPhase.WAITING_REVIEW
    branches = [t.branch for t in result.state.tasks]
    assert sorted(result.refs) == sorted(f"refs/remotes/{b}" for b in branches)
    for t in result.state.tasks:  # each ref is the task's head, with the user's commit under it
        assert result.refs[f"refs/remotes/{t.branch}"] == t.head_sha
        assert mine in sh("git", "rev-list", f"refs/remotes/{t.branch}", cwd=repo).split()
    assert sh("git", "rev-parse", "trunk", cwd=repo).strip() == mine  # nothing of the user's moved
    assert sh("git", "status", "--porcelain", cwd=repo) == ""
    text = "\n".join(said)
    assert f"Issue #1 '{ISSUE_TITLE}' opened on the local simulator" in text
    assert "waits for your review" in text
    assert all(f"{b} (its checks pass)" in text for b in branches)
