"""``pull_request``: closes and pushes on Otto's PRs."""

from __future__ import annotations

from app.intake import IGNORED, HandlerContext, Outcome


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    # closed / synchronize on Otto's branches are the merge milestone; nothing to do yet.
    return IGNORED
