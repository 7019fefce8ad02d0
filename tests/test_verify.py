"""Detecting and running a repository's checks (app/verify.py)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from app.sandbox import Sandbox
from app.verify import VerifyPlan, VerifyResult, detect_commands, resolve_plan, run_verify
from tests.sandboxing import make_mounts, make_sandbox

# The checks run in the sandbox, whose toolchain (tests/sandboxing.py) has pytest.
PY_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # faster startup of the inner pytest


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path)


def verify(sandbox: Sandbox, repo: Path, plan: VerifyPlan, **kwargs: Any) -> VerifyResult:
    """``run_verify`` in the sandbox on ``repo`` (handed to the sandbox's uid as Otto's checkouts are)."""
    return run_verify(sandbox, make_mounts(sandbox, repo), plan, **kwargs)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    root.mkdir()
    return root


# --- detection ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        {"pytest.ini": "[pytest]\n"},
        {"pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['tests']\n"},
        {"setup.cfg": "[tool:pytest]\naddopts = -q\n"},
        {"tests/test_calc.py": "def test_x(): pass\n"},
        {"pkg/sub/calc_test.py": "def test_x(): pass\n"},
        {"test_top.py": "def test_x(): pass\n"},
        {"conftest.py": ""},
    ],
)
def test_detect_pytest(repo: Path, files: dict[str, str]) -> None:
    assert detect_commands(_write(repo, files)) == VerifyPlan(setup=[], verify=["python -m pytest -q"])


def test_python_project_without_tests_has_no_checks(repo: Path) -> None:
    _write(repo, {"pyproject.toml": "[project]\nname = 'x'\n", "x.py": "", "node_modules/t/test_x.py": ""})
    assert detect_commands(repo) == VerifyPlan()


def test_detect_npm(repo: Path) -> None:
    _write(repo, {"package.json": json.dumps({"scripts": {"test": "jest"}})})
    assert detect_commands(repo) == VerifyPlan(setup=["npm install"], verify=["npm test"])
    (repo / "node_modules").mkdir()
    assert detect_commands(repo) == VerifyPlan(setup=[], verify=["npm test"])
    (repo / "package-lock.json").write_text("{}")
    assert detect_commands(repo) == VerifyPlan(setup=["npm ci"], verify=["npm test"])
    (repo / "yarn.lock").write_text("")
    assert detect_commands(repo).verify == ["yarn test"]


@pytest.mark.parametrize(
    "package",
    [
        {"scripts": {"test": 'echo "Error: no test specified" && exit 1'}},
        {"scripts": {"build": "tsc"}},
        {"name": "x"},
        "not json",
    ],
)
def test_npm_without_a_real_test_script(repo: Path, package: object) -> None:
    (repo / "package.json").write_text(package if isinstance(package, str) else json.dumps(package))
    assert detect_commands(repo) == VerifyPlan()


@pytest.mark.parametrize(
    ("makefile", "found"),
    [
        ("test:\n\tpytest\n", True),
        (".PHONY: test\ntest: build\n\t./run\n", True),
        ("unit test: deps\n\t./run\n", True),
        ("test::\n\t./run\n", True),
        ("test := 1\nall:\n\techo\n", False),
        ("tests:\n\techo\n", False),
        ("# test:\nbuild:\n\techo\n", False),
    ],
)
def test_detect_make_test(repo: Path, makefile: str, found: bool) -> None:
    _write(repo, {"Makefile": makefile, "go.mod": "module x\n"})
    expected = VerifyPlan(verify=["make test"]) if found else VerifyPlan(verify=["go test ./..."])
    assert detect_commands(repo) == expected


def test_detect_go_cargo_and_several(repo: Path) -> None:
    assert detect_commands(_write(repo, {"go.mod": "module x\n"})).verify == ["go test ./..."]
    _write(repo, {"Cargo.toml": "[package]\nname = 'x'\n", "tests/test_a.py": ""})
    _write(repo, {"package.json": json.dumps({"scripts": {"test": "vitest run"}}), "package-lock.json": "{}"})
    assert detect_commands(repo) == VerifyPlan(
        setup=["npm ci"], verify=["python -m pytest -q", "npm test", "go test ./...", "cargo test"]
    )


def test_resolve_plan_prefers_the_repository_config(repo: Path) -> None:
    _write(repo, {"go.mod": "module x\n"})
    assert resolve_plan(repo, ["make deps"], ["make check"]) == VerifyPlan(
        setup=["make deps"], verify=["make check"]
    )
    assert resolve_plan(repo, None, None) == VerifyPlan(verify=["go test ./..."])
    assert resolve_plan(repo, ["make deps"], []) == VerifyPlan(setup=["make deps"], verify=["go test ./..."])


# --- running ------------------------------------------------------------------------------------------------

CALC = "def add(a, b):\n    return a + b\n"


def test_no_checks(sandbox: Sandbox, repo: Path) -> None:
    result = verify(sandbox, repo, detect_commands(repo), timeout_s=10, log_limit=10_000)
    assert result.passed
    assert result.no_checks
    assert result.commands == []
    assert "no checks found" in result.log


def test_passing_pytest(sandbox: Sandbox, repo: Path) -> None:
    _write(
        repo,
        {
            "calc.py": CALC,
            "tests/test_calc.py": "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n",
        },
    )
    _write(repo, {"pytest.ini": "[pytest]\npythonpath = .\n"})
    result = verify(sandbox, repo, detect_commands(repo), timeout_s=60, log_limit=20_000, env=PY_ENV)
    assert result.passed, result.log
    assert result.exit_code == 0
    assert not result.timed_out
    assert not result.no_checks
    assert result.failures == 0
    assert result.commands == ["python -m pytest -q"]
    assert result.log.startswith("$ python -m pytest -q\n")
    assert "1 passed" in result.log
    assert not list(repo.rglob("__pycache__"))  # PYTHONDONTWRITEBYTECODE reached the command


def test_failing_pytest(sandbox: Sandbox, repo: Path) -> None:
    _write(
        repo,
        {
            "pytest.ini": "[pytest]\npythonpath = .\n",
            "calc.py": CALC,
            "tests/test_calc.py": (
                "from calc import add\n\n"
                "def test_ok():\n    assert add(1, 1) == 2\n\n"
                "def test_wrong():\n    assert add(1, 1) == 3, 'one plus one is not three'\n"
            ),
        },
    )
    result = verify(sandbox, repo, detect_commands(repo), timeout_s=60, log_limit=20_000, env=PY_ENV)
    assert not result.passed
    assert result.exit_code == 1
    assert not result.timed_out
    assert result.failures == 1
    assert "one plus one is not three" in result.log
    assert result.failed_command == "python -m pytest -q"


def test_stops_at_the_first_failing_command(sandbox: Sandbox, repo: Path) -> None:
    plan = VerifyPlan(setup=["echo setting up", "echo broken >&2; exit 2"], verify=["echo SHOULD-NOT-RUN"])
    result = verify(sandbox, repo, plan, timeout_s=10, log_limit=10_000)
    assert not result.passed
    assert result.commands == ["echo setting up", "echo broken >&2; exit 2"]
    assert result.exit_code == 2
    assert result.failures is None
    assert "SHOULD-NOT-RUN" not in result.log
    assert "broken" in result.log
    assert "setting up" in result.log
    plan = VerifyPlan(verify=["echo lint failed; exit 1", "echo SHOULD-NOT-RUN"])
    result = verify(sandbox, repo, plan, timeout_s=10, log_limit=10_000)
    assert result.commands == ["echo lint failed; exit 1"]
    assert result.failures is None


def test_timeout(sandbox: Sandbox, repo: Path) -> None:
    started = time.monotonic()
    result = verify(
        sandbox, repo, VerifyPlan(verify=["echo begin; sleep 30"]), timeout_s=0.5, log_limit=10_000
    )
    assert time.monotonic() - started < 5
    assert not result.passed
    assert result.timed_out
    assert result.exit_code is None
    assert "begin" in result.log
    assert "timed out after 0.5s" in result.log


def test_log_is_bounded(sandbox: Sandbox, repo: Path) -> None:
    plan = VerifyPlan(
        setup=["seq 1 50000"], verify=["seq 1 50000; echo '2 failed, 1 passed in 0.5s'; exit 1"]
    )
    result = verify(sandbox, repo, plan, timeout_s=20, log_limit=3000)
    assert len(result.log.encode()) <= 3000
    assert re.search(r"\[\d+ bytes omitted\]", result.log)
    assert result.log.startswith("$ seq 1 50000\n")
    assert result.log.endswith("verify failed at: seq 1 50000; echo '2 failed, 1 passed in 0.5s'; exit 1\n")
    assert result.failures == 2


def test_checks_get_a_scrubbed_environment(
    sandbox: Sandbox, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTTO_WEBHOOK_SECRET", "whsec-abc")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_abc")
    result = verify(
        sandbox, repo, VerifyPlan(verify=["env"]), timeout_s=10, log_limit=20_000, env={"EXTRA": "1"}
    )
    assert result.passed
    assert "OTTO_WEBHOOK_SECRET" not in result.log
    assert "GITHUB_TOKEN" not in result.log
    assert "EXTRA=1" in result.log
    assert "CI=true" in result.log
