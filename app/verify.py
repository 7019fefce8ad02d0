"""The repository's checks: which commands to run, and running them with timeouts and bounded logs.

Commands run in the task's sandbox exactly like the agent's commands (:meth:`app.sandbox.Sandbox.run`):
``bash -c`` in the workspace, no network (the setup step may get egress through Otto's filtering proxy when
the repository asks for ``network: setup``), limits, timeouts, bounded output. Detection reads the workspace's
top-level files without following symlinks (a repository could point ``package.json`` at a host file).
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from app.domain.failures import parse_failure_count
from app.domain.logs import bound_text
from app.sandbox import Mounts, ProcResult, Sandbox

NO_CHECKS_LOG = "no checks found: the repository configures no verify commands and none were detected\n"

# npm's placeholder for a package without tests.
_NPM_PLACEHOLDER = "no test specified"
_MAKE_TEST_TARGET = re.compile(
    r"^(?:[A-Za-z0-9_.%/-]+[ \t]+)*test(?:[ \t]+[A-Za-z0-9_.%/-]+)*[ \t]*::?(?!=)", re.M
)
_SKIP_DIRS = {"node_modules", "venv", ".venv", "env", "build", "dist", "target", "vendor", "__pycache__"}


class VerifyPlan(BaseModel):
    setup: list[str] = Field(default_factory=list)
    verify: list[str] = Field(default_factory=list)


class VerifyResult(BaseModel):
    passed: bool
    exit_code: int | None  # of the last command run; None if it timed out or nothing ran
    timed_out: bool
    log: str  # bounded: each command's header and output
    failures: int | None  # failed tests from the runner's summary; None = unknown
    duration_s: float
    commands: list[str]  # the commands actually run, setup first, in order
    no_checks: bool = False
    failed_command: str | None = None


# --- detection ---------------------------------------------------------------------------------------


_MAX_READ = 1024 * 1024


def _read(path: Path) -> str:
    """A regular file's text (at most 1 MiB); '' for symlinks, special files, missing or unreadable ones."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, _MAX_READ).decode("utf-8", errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _has_python_tests(root: Path, max_depth: int = 3) -> bool:
    def walk(d: Path, depth: int) -> bool:
        try:
            children = list(d.iterdir())
        except OSError:
            return False
        for child in children:
            name = child.name
            if name.startswith(".") or name in _SKIP_DIRS:
                continue
            if (
                child.is_file()
                and not child.is_symlink()
                and name.endswith(".py")
                and (name.startswith("test_") or name.endswith("_test.py"))
            ):
                return True
            if child.is_dir() and not child.is_symlink() and depth < max_depth and walk(child, depth + 1):
                return True
        return False

    return walk(root, 1)


def _uses_pytest(root: Path) -> bool:
    if (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return True
    for name in ("pyproject.toml", "setup.cfg", "tox.ini"):
        if "pytest" in _read(root / name):
            return True
    for d in ("tests", "test"):
        top = root / d
        if top.is_dir() and not top.is_symlink() and _has_python_files(top):
            return True
    return _has_python_tests(root)


def _has_python_files(d: Path, max_depth: int = 4) -> bool:
    """Any ``*.py`` under ``d`` (symlinks not followed)."""
    stack = [(d, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for e in entries:
            if e.is_file(follow_symlinks=False) and e.name.endswith(".py"):
                return True
            if e.is_dir(follow_symlinks=False) and depth < max_depth:
                stack.append((Path(e.path), depth + 1))
    return False


def _npm_plan(root: Path) -> VerifyPlan | None:
    pkg = root / "package.json"
    if not pkg.is_file():
        return None
    try:
        data = json.loads(_read(pkg))
    except ValueError:
        return None
    scripts = data.get("scripts") if isinstance(data, dict) else None
    test = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(test, str) or not test.strip() or _NPM_PLACEHOLDER in test:
        return None
    if (root / "pnpm-lock.yaml").is_file():
        return VerifyPlan(setup=["pnpm install --frozen-lockfile"], verify=["pnpm test"])
    if (root / "yarn.lock").is_file():
        return VerifyPlan(setup=["yarn install --frozen-lockfile"], verify=["yarn test"])
    if (root / "package-lock.json").is_file() or (root / "npm-shrinkwrap.json").is_file():
        return VerifyPlan(setup=["npm ci"], verify=["npm test"])
    setup = [] if (root / "node_modules").is_dir() else ["npm install"]
    return VerifyPlan(setup=setup, verify=["npm test"])


def _has_make_test(root: Path) -> bool:
    for name in ("GNUmakefile", "makefile", "Makefile"):
        if _MAKE_TEST_TARGET.search(_read(root / name)):
            return True
    return False


def detect_commands(root: Path) -> VerifyPlan:
    """Checks inferred from the files at the top of ``root`` (used when ``.github/otto.yml`` has none).

    A Makefile ``test`` target is the project's own entry point and wins alone (``make test``).
    Otherwise every ecosystem found contributes, in this order: pytest (``python -m pytest -q``: a
    pytest config in pytest.ini/pyproject.toml/setup.cfg/tox.ini, a conftest.py, a tests/ or test/ dir
    with Python files, or test_*.py / *_test.py files within 3 levels), npm/yarn/pnpm (``package.json``
    with a real ``test`` script; setup installs dependencies), ``go test ./...`` (go.mod), ``cargo test``
    (Cargo.toml). Nothing found → an empty plan (run_verify reports ``no_checks``). Python setup
    (installing the project's dependencies) is left to the repository config.
    """
    if _has_make_test(root):
        return VerifyPlan(verify=["make test"])
    plan = VerifyPlan()
    if _uses_pytest(root):
        plan.verify.append("python -m pytest -q")
    npm = _npm_plan(root)
    if npm is not None:
        plan.setup.extend(npm.setup)
        plan.verify.extend(npm.verify)
    if (root / "go.mod").is_file():
        plan.verify.append("go test ./...")
    if (root / "Cargo.toml").is_file():
        plan.verify.append("cargo test")
    return plan


def resolve_plan(root: Path, setup: list[str] | None, verify: list[str] | None) -> VerifyPlan:
    """The repository config's commands when it gives ``verify``; else detection (config ``setup`` kept)."""
    if verify:
        return VerifyPlan(setup=list(setup or []), verify=list(verify))
    detected = detect_commands(root)
    if setup:
        detected.setup = list(setup)
    return detected


# --- running -----------------------------------------------------------------------------------------


def _section(command: str, result: ProcResult, timeout_s: float) -> str:
    out = result.output
    if out and not out.endswith("\n"):
        out += "\n"
    if result.timed_out:
        status = f"[timed out after {timeout_s:g}s; the command and its child processes were killed]"
    else:
        status = f"[exit code {result.exit_code} after {result.duration_s:.1f}s]"
        if result.note:
            status += f" [{result.note}]"
    return f"$ {command}\n{out}{status}\n"


def run_setup(
    sandbox: Sandbox,
    mounts: Mounts,
    commands: Sequence[str],
    timeout_s: float,
    log_limit: int,
    *,
    network: bool,
) -> tuple[bool, str]:
    """Run the setup ``commands`` alone (stopping at the first failure): (all passed, their bounded log)."""
    sections: list[str] = []
    passed = True
    for command in commands:
        result = sandbox.run(
            command, mounts=mounts, timeout_s=timeout_s, output_limit=log_limit, network=network
        )
        sections.append(_section(command, result, timeout_s))
        if result.timed_out or result.exit_code != 0:
            passed = False
            break
    return passed, bound_text("".join(sections), log_limit, head_fraction=0.25)


def run_verify(
    sandbox: Sandbox,
    mounts: Mounts,
    plan: VerifyPlan,
    timeout_s: float,
    log_limit: int,
    env: Mapping[str, str] | None = None,
    *,
    setup_network: bool = False,
) -> VerifyResult:
    """Run ``plan.setup`` then ``plan.verify`` in the sandbox, stopping at the first failing command.

    ``timeout_s`` applies to each command. ``env`` is added to the sandbox's environment (tool settings, never
    secrets). ``setup_network``: the setup commands (only they) get egress through Otto's proxy. ``log`` is
    bounded to ``log_limit`` bytes overall (and each command's output to the same limit while it runs).
    ``failures`` is the failed-test count from the last verify command's output; ``None`` when no
    summary was recognised, when a setup command failed, or when a command failed although its runner
    reported 0 failed tests (the failure is not a test failure then). A passing run with no recognised
    summary reports 0.
    """
    started = time.monotonic()
    if not plan.verify:
        return VerifyResult(
            passed=True,
            exit_code=None,
            timed_out=False,
            log=NO_CHECKS_LOG,
            failures=None,
            duration_s=0.0,
            commands=[],
            no_checks=True,
        )
    sections: list[str] = []
    commands: list[str] = []
    last: ProcResult | None = None
    failed_command: str | None = None
    failed_in_setup = False
    for phase, command in [("setup", c) for c in plan.setup] + [("verify", c) for c in plan.verify]:
        commands.append(command)
        last = sandbox.run(
            command,
            mounts=mounts,
            timeout_s=timeout_s,
            output_limit=log_limit,
            env=env,
            network=setup_network and phase == "setup",
        )
        sections.append(_section(command, last, timeout_s))
        if last.timed_out or last.exit_code != 0:
            failed_command = command
            failed_in_setup = phase == "setup"
            break
    assert last is not None
    passed = failed_command is None
    failures: int | None
    if failed_in_setup:
        failures = None
    else:
        parsed = parse_failure_count(last.output)
        failures = (parsed or 0) if passed else (parsed or None)
    log = "".join(sections)
    log += "verify passed\n" if passed else f"verify failed at: {failed_command}\n"
    return VerifyResult(
        passed=passed,
        exit_code=last.exit_code,
        timed_out=last.timed_out,
        log=bound_text(log, log_limit, head_fraction=0.25),
        failures=failures,
        duration_s=time.monotonic() - started,
        commands=commands,
        failed_command=failed_command,
    )
