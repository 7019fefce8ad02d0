"""``check_suite`` / ``check_run``: other apps' CI results on Otto's PRs."""

from __future__ import annotations

from app.intake import IGNORED, HandlerContext, Outcome


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    # CI fix rounds are a later milestone; Otto's own check runs are always ignored.
    return IGNORED
