"""``pull_request_review``: approvals merge, change requests retry. Plain review comments start nothing."""

from __future__ import annotations

from app.contracts.messages import ReviewRequest
from app.events import ReviewSubmitted
from app.routing import HandlerContext, Outcome, Routes, ignored
from handlers.common import is_bot, repo_ref

routes = Routes()


@routes.register("pull_request_review", action="submitted")
async def submitted(ctx: HandlerContext, event: ReviewSubmitted) -> Outcome:
    if is_bot(event.sender):
        return ignored("review by a bot")
    state = event.review.state.lower()
    if state not in ("approved", "changes_requested"):
        return ignored(f"a {state} review starts nothing")
    repo = repo_ref(event)
    if repo is None:
        return ignored("no installation in payload")
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
    return await ctx.hand_off(request, f"accepted: review {state}")
