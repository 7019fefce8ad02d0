"""``issues``: labeling an issue with the trigger label asks for a run."""

from __future__ import annotations

from app.domain.run import StartRun, Trigger
from app.events import IssuesLabeled
from app.intake import IGNORED, HandlerContext, Outcome
from handlers.common import is_bot, repo_ref


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    if not isinstance(event, IssuesLabeled):
        return IGNORED
    label = event.label.name if event.label else None
    if label != ctx.settings.trigger_label:
        return Outcome(202, "ignored: not the trigger label")
    if is_bot(event.sender):
        return Outcome(202, "ignored: labeled by a bot")
    repo = repo_ref(event)
    if repo is None:
        return Outcome(202, "ignored: no installation in payload")
    request = StartRun(
        repo=repo,
        issue_number=event.issue.number,
        # the text the maintainer saw when labeling: edits made afterwards never reach the model
        trigger=Trigger(
            delivery_id=ctx.delivery_id,
            sender=event.sender.login,
            label=label,
            issue_title=event.issue.title,
            issue_body=event.issue.body or "",
        ),
    )
    if await ctx.handoff.submit(ctx.delivery_id, request):
        return Outcome(202, "accepted: run requested")
    return Outcome(200, "duplicate delivery: already accepted")
