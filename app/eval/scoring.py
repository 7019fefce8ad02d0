"""Scoring like SWE-bench: Otto's combined change and the hidden ``test_patch`` applied on ``base_commit``,
then FAIL_TO_PASS and PASS_TO_PASS run in Otto's sandbox; resolved iff every one of them passes."""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Sequence

from pydantic import BaseModel

from app.domain.repo_config import RepoConfig
from app.eval.instances import Instance
from app.runtime import Services
from app.sandbox import Mounts
from app.verify import run_setup
from app.workspace.checkouts import SANDBOX_OBJECTS

SCORE_BRANCH = "otto-eval/score"
_RESULT = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS|SKIPPED) (\S.*?)(?: - .*)?$", re.M)


class Score(BaseModel):
    resolved: bool
    applied: bool  # Otto's change and the test patch applied on base_commit
    passed: list[str] = []
    failed: list[str] = []  # of FAIL_TO_PASS and PASS_TO_PASS: failed, errored, or never ran
    checks_s: float = 0.0
    log_tail: str = ""


def test_command(ids: Sequence[str]) -> str:
    """pytest with one line per test result (``-rA``); no cache, and neither the project's addopts nor its
    warning filters (which may name plugins that are not installed) in the way; a ``src`` layout importable
    without installing the project."""
    quoted = " ".join(shlex.quote(i) for i in ids)
    return (
        'PYTHONPATH="$PWD/src:$PWD" python -m pytest -rA --tb=short -q -p no:cacheprovider -o addopts= '
        f"-o filterwarnings= {quoted}"
    )


def outcomes(output: str) -> dict[str, str]:
    """pytest's ``-rA`` summary: node id → PASSED, FAILED, ERROR, …"""
    return {m.group(2).strip(): m.group(1) for m in _RESULT.finditer(output)}


async def run_tests(
    svc: Services, inst: Instance, clone_url: str, installation_id: int, full_name: str, config: RepoConfig
) -> Score:
    """The instance's tests on the score branch (already pushed), in a fresh checkout and the sandbox."""
    ws = svc.workspace
    token = await svc.github.installation_token(installation_id)
    identity = await svc.github.bot_identity(installation_id)
    mirror = await asyncio.to_thread(ws.sync_mirror, full_name, clone_url, token)
    name = f"eval-score-{inst.instance_id}"[:100]
    worktree = await asyncio.to_thread(ws.create_worktree, mirror, name, SCORE_BRANCH, [], None, identity)
    try:
        objects = ((worktree.objects, SANDBOX_OBJECTS),) if svc.sandbox.enabled else ()
        mounts = Mounts(worktree.path, worktree.home, worktree.tmp, ro_binds=objects)
        s = svc.settings
        if config.setup:
            ok, log = await asyncio.to_thread(
                run_setup,
                svc.sandbox,
                mounts,
                config.setup,
                s.verify_timeout_s,
                s.verify_log_limit,
                network=False,
            )
            if not ok:
                return Score(
                    resolved=False,
                    applied=True,
                    failed=[*inst.FAIL_TO_PASS, *inst.PASS_TO_PASS],
                    log_tail=log[-4000:],
                )
        wanted = [*inst.FAIL_TO_PASS, *inst.PASS_TO_PASS]
        result = await asyncio.to_thread(
            svc.sandbox.run,
            test_command(wanted),
            mounts=mounts,
            timeout_s=s.verify_timeout_s,
            output_limit=8 * 1024 * 1024,
        )
    finally:
        await asyncio.to_thread(ws.remove_worktree, worktree)
    seen = outcomes(result.output)
    passed = [t for t in wanted if seen.get(t) in ("PASSED", "XPASS")]
    failed = [t for t in wanted if t not in passed]
    return Score(
        resolved=not failed,
        applied=True,
        passed=passed,
        failed=failed,
        checks_s=result.duration_s,
        log_tail=result.output[-4000:],
    )
