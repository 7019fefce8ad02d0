"""``pull_request_review``: approvals and change requests on Otto's PRs."""

from __future__ import annotations

from app.events import ReviewSubmitted
from app.intake import IGNORED, HandlerContext, Outcome
from handlers.common import is_bot


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    if not isinstance(event, ReviewSubmitted):
        return IGNORED
    if is_bot(event.sender):
        return Outcome(202, "ignored: review by a bot")
    # Merge on approval is the next milestone; acknowledge without acting.
    return Outcome(202, "ignored: reviews are not acted on by this version")
