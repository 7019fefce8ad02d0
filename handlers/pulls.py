"""``pull_request``: Otto's PRs closed, merged, reopened or marked ready for review, or pushed to by
someone else (a person, or another App)."""

from __future__ import annotations

from app.contracts.messages import PullChange
from app.events import PullRequestEvent
from app.routing import HandlerContext, Outcome, Routes, ignored
from handlers.common import is_bot, repo_ref

routes = Routes()


@routes.register("pull_request", action=("closed", "synchronize", "reopened", "ready_for_review"))
async def changed(ctx: HandlerContext, event: PullRequestEvent) -> Outcome:
    if event.action == "edited":
        return ignored("an edit of the pull request")
    if event.action != "closed" and is_bot(event.sender):
        return ignored(f"{event.action} by a bot")  # Otto's own pushes, or another bot's
    if event.action == "closed" and is_bot(event.sender) and event.pull_request.merged:
        return ignored("merged by a bot")  # Otto's own merges are already recorded
    repo = repo_ref(event)
    if repo is None:
        return ignored("no installation in payload")
    request = PullChange(
        repo=repo,
        pr_number=event.pull_request.number,
        action=event.action,
        merged=bool(event.pull_request.merged),
        head_sha=event.pull_request.head.sha,
        sender=event.sender.login,
        delivery_id=ctx.delivery_id,
    )
    return await ctx.hand_off(request, f"accepted: pull request {event.action}")
