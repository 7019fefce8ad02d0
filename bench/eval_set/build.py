"""Rebuild the eval's repositories and ``instances.jsonl`` from the projects' sdists, deterministically, and
check every instance: FAIL_TO_PASS fail at ``base_commit`` (with the test patch), FAIL_TO_PASS and
PASS_TO_PASS pass with the gold patch.

Each instance's ``base_commit`` is one root commit: the released sdist with the break applied (a history
with the upstream code before it would hand the fix to any agent that runs ``git show``). Commits use a
fixed identity and date, so the same sdist gives the same shas on every machine. The checks run the
projects' own tests with this Python (upstream code chosen here, not a user's): ``otto eval`` scores in
Otto's sandbox.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from app.eval.scoring import outcomes
from bench.eval_set.breaks import PROJECTS, Break, Project

HERE = Path(__file__).parent
INSTANCES = HERE / "instances.jsonl"
P2P_LIMIT = 40
DATE = "2026-01-01T00:00:00+00:00"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "otto-eval",
    "GIT_AUTHOR_EMAIL": "otto-eval@localhost",
    "GIT_COMMITTER_NAME": "otto-eval",
    "GIT_COMMITTER_EMAIL": "otto-eval@localhost",
    "GIT_AUTHOR_DATE": DATE,
    "GIT_COMMITTER_DATE": DATE,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args],
        cwd=repo,
        env=GIT_ENV,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} in {repo}: {proc.stderr.strip()[:400]}")
    return proc.stdout


def sdist(dist: str, cache: Path) -> Path:
    """The project's sdist unpacked under ``cache`` (downloaded once with pip, from PyPI)."""
    name, version = dist.split("==")
    for candidate in (f"{name}-{version}", f"{name.replace('-', '_')}-{version}"):
        if (cache / candidate).is_dir():
            return cache / candidate
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            dist,
            "-d",
            str(cache),
        ],
        check=True,
        timeout=600,
    )
    archive = next(
        p
        for p in sorted(cache.glob("*.tar.gz"))
        if p.name.lower().startswith(name.lower().replace("-", "_"))
        or p.name.lower().startswith(name.lower())
    )
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    return sdist(dist, cache)


def commit_tree(repo: Path, files_from: Path, message: str) -> str:
    """A root commit of ``files_from``'s files, made in ``repo`` (its work tree replaced)."""
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    shutil.copytree(files_from, repo, dirs_exist_ok=True, symlinks=True)
    git(repo, "checkout", "-q", "--orphan", "tmp-root")
    git(repo, "add", "--all", "--force")
    git(repo, "commit", "-q", "--no-verify", "-m", message)
    sha = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "--detach")
    git(repo, "branch", "-q", "-D", "tmp-root")
    return sha


def test_names(tests: str) -> list[str]:
    return [
        n.name for n in ast.parse(tests).body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    ]


def run_pytest(repo: Path, sha: str, patches: list[str], args: list[str]) -> dict[str, str]:
    """pytest's per-test outcomes for ``args`` on ``sha`` with ``patches`` applied (in a scratch copy)."""
    with tempfile.TemporaryDirectory(prefix="otto-eval-set-") as tmp:
        work = Path(tmp) / "w"
        git(Path(tmp), "clone", "-q", "--shared", str(repo), str(work))
        git(work, "checkout", "-q", "--detach", sha)
        for patch in patches:
            git(work, "apply", "--whitespace=nowarn", "-", stdin=patch)
        env = {**os.environ, "PYTHONPATH": f"{work / 'src'}:{work}", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-rA",
                "--tb=no",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=",
                "-o",
                "filterwarnings=",
                *args,
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        return outcomes(proc.stdout)


def instance(project: Project, n: int, b: Break, repo: Path, upstream_tree: Path) -> dict[str, Any]:
    """One instance: its base commit (the sdist with the break) and what decides it, checked."""
    with tempfile.TemporaryDirectory(prefix="otto-eval-set-") as tmp:
        broken = Path(tmp) / "tree"
        shutil.copytree(upstream_tree, broken, symlinks=True)
        for file, old, new in b.edits:
            target = broken / file
            text = target.read_text(encoding="utf-8")
            if text.count(old) != 1:
                raise RuntimeError(
                    f"{project.repo} {b.slug}: the text to break occurs {text.count(old)} times"
                )
            target.write_text(text.replace(old, new), encoding="utf-8")
        base = commit_tree(repo, broken, f"{project.dist.replace('==', ' ')}")
    upstream = git(repo, "rev-parse", "upstream").strip()
    patch = git(repo, "diff", base, upstream, "--", *sorted({f for f, _, _ in b.edits}))
    test_file = f"{project.tests_dir}/test_otto_eval_{b.slug.replace('-', '_')}.py".lstrip("/")
    test_patch = new_file_patch(test_file, b.tests)
    new_tests = [f"{test_file}::{name}" for name in test_names(b.tests)]
    owner, name = project.repo.split("/")
    iid = f"{owner}__{name}-{n}"
    git(repo, "branch", "-q", "-f", f"instance/{iid}", base)  # keeps the base commit in the repository
    at_base = run_pytest(repo, base, [], list(project.p2p_files))
    with_gold = run_pytest(repo, base, [patch, test_patch], [*project.p2p_files, test_file])
    new_at_base = run_pytest(repo, base, [test_patch], new_tests)
    f2p = [t for t in new_tests if new_at_base.get(t) != "PASSED"]  # new tests that pass at base: P2P
    if not f2p:
        raise RuntimeError(f"{iid}: every new test passes at the base commit")
    if any(with_gold.get(t) != "PASSED" for t in new_tests):
        raise RuntimeError(f"{iid}: a new test fails with the gold patch: {with_gold}")
    kept = [t for t in new_tests if t not in f2p]
    others = sorted(t for t, o in at_base.items() if o == "PASSED" and with_gold.get(t) == "PASSED")
    p2p = kept + others[: P2P_LIMIT - len(kept)]
    if not p2p:
        raise RuntimeError(f"{iid}: no PASS_TO_PASS test")
    return {
        "instance_id": iid,
        "repo": project.repo,
        "base_commit": base,
        "problem_statement": f"{b.title}\n\n{b.body}\n",
        "hints_text": "",
        "patch": patch,
        "test_patch": test_patch,
        "FAIL_TO_PASS": json.dumps(f2p),
        "PASS_TO_PASS": json.dumps(p2p),
        "version": project.dist.split("==")[1],
        "otto": {"verify": project.verify, "max_fix_rounds": 2},
    }


def new_file_patch(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    head = f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
    return f"{head}@@ -0,0 +1,{len(lines)} @@\n{body}"


def build(repos: Path, cache: Path, out: Path = INSTANCES, say: Any = print) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for project in PROJECTS:
        tree = sdist(project.dist, cache)
        repo = (repos / project.repo.replace("/", "__")).resolve()
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "upstream-init")
        upstream = commit_tree(repo, tree, f"{project.dist.replace('==', ' ')} (upstream)")
        git(repo, "branch", "-q", "-f", "upstream", upstream)
        for n, b in enumerate(project.breaks, start=1):
            row = instance(project, n, b, repo, tree)
            rows.append(row)
            f2p, p2p = (len(json.loads(row[k])) for k in ("FAIL_TO_PASS", "PASS_TO_PASS"))
            say(f"  {row['instance_id']}: {f2p} FAIL_TO_PASS, {p2p} PASS_TO_PASS, checked")
    out.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    return rows
