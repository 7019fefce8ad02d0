"""Is a fix round making progress? Fewer failing tests, or a different failure."""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel

_FAILURE_LINE = re.compile(
    r"(FAILED |ERROR |--- FAIL:|^FAIL\b|error(\[E\d+\])?:|Error:|AssertionError|assert |✕|×|panicked at)",
    re.M,
)
_NOISE = re.compile(r"(0x[0-9a-f]+|\d+(\.\d+)?(ms|s)\b|\d+)")


class Outcome(BaseModel):
    """What one verification looked like, reduced to what progress is judged on."""

    passed: bool
    failures: int | None
    signature: str


def failure_signature(log: str) -> str:
    """A fingerprint of the failing lines, with numbers and timings blanked out."""
    lines = [
        _NOISE.sub("#", m.string[m.start() : m.string.find("\n", m.start())].strip())
        for m in _FAILURE_LINE.finditer(log)
    ]
    if not lines:
        lines = [_NOISE.sub("#", line.strip()) for line in log.strip().splitlines()[-5:]]
    return hashlib.sha256("\n".join(sorted(set(lines))).encode()).hexdigest()[:16]


def made_progress(before: Outcome, after: Outcome) -> bool:
    if after.passed:
        return True
    if before.failures is not None and after.failures is not None:
        if after.failures < before.failures:
            return True
        if after.failures > before.failures:
            return False
    return after.signature != before.signature


def describe_stage(stage: str, step: int, max_steps: int, fix_round: int, max_fix_rounds: int) -> str:
    """A running attempt's stage in words: "agent step 7/40", "verifying", "fix round 1/3 (step 12/40)"."""
    if stage == "agent":
        return f"agent step {step}/{max_steps}" if step else "agent starting"
    if stage.startswith("fix round"):
        return f"fix round {fix_round}/{max_fix_rounds}" + (f" (step {step}/{max_steps})" if step else "")
    if stage == "verify":
        return "verifying"
    if stage.startswith("push"):
        return "pushing"
    if stage == "pull request":
        return "opening the pull request"
    return "preparing the checkout"
