"""``pull_request``: Otto's PRs closed or merged, or pushed to by someone else."""

from __future__ import annotations

from app.domain.run import PullChange
from app.events import PullRequestEvent
from app.intake import IGNORED, HandlerContext, Outcome
from handlers.common import is_bot, repo_ref


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    if not isinstance(event, PullRequestEvent) or event.action not in ("closed", "synchronize"):
        return IGNORED
    if event.action == "synchronize" and is_bot(event.sender):
        return Outcome(202, "ignored: pushed by a bot")  # Otto's own pushes, or another bot's
    if event.action == "closed" and is_bot(event.sender) and event.pull_request.merged:
        return Outcome(202, "ignored: merged by a bot")  # Otto's own merges are already recorded
    repo = repo_ref(event)
    if repo is None:
        return Outcome(202, "ignored: no installation in payload")
    request = PullChange(
        repo=repo,
        pr_number=event.pull_request.number,
        action="closed" if event.action == "closed" else "synchronize",
        merged=bool(event.pull_request.merged),
        head_sha=event.pull_request.head.sha,
        sender=event.sender.login,
        delivery_id=ctx.delivery_id,
    )
    if await ctx.handoff.submit(ctx.delivery_id, request):
        return Outcome(202, f"accepted: pull request {event.action}")
    return Outcome(200, "duplicate delivery: already accepted")
