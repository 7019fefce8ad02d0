"""``pull_request_review``: approvals merge, change requests retry. Plain review comments start nothing."""

from __future__ import annotations

from app.domain.run import ReviewRequest
from app.events import ReviewSubmitted
from app.intake import IGNORED, HandlerContext, Outcome
from handlers.common import is_bot, repo_ref


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    if not isinstance(event, ReviewSubmitted):
        return IGNORED
    if is_bot(event.sender):
        return Outcome(202, "ignored: review by a bot")
    state = event.review.state.lower()
    if state not in ("approved", "changes_requested"):
        return Outcome(202, f"ignored: a {state} review starts nothing")
    repo = repo_ref(event)
    if repo is None:
        return Outcome(202, "ignored: no installation in payload")
    request = ReviewRequest(
        repo=repo,
        pr_number=event.pull_request.number,
        reviewer=event.sender.login,
        state="approved" if state == "approved" else "changes_requested",
        commit_id=event.review.commit_id,
        review_id=event.review.id,
        body=event.review.body or "",
        delivery_id=ctx.delivery_id,
    )
    if await ctx.handoff.submit(ctx.delivery_id, request):
        return Outcome(202, f"accepted: review {state}")
    return Outcome(200, "duplicate delivery: already accepted")
