"""``issues``: labeling an issue with the trigger label asks for a run."""

from __future__ import annotations

from app.contracts.messages import StartRun, Trigger
from app.events import IssuesLabeled
from app.routing import HandlerContext, Outcome, Routes, ignored
from handlers.common import is_bot, repo_ref

routes = Routes()


@routes.register("issues", action="labeled")
async def labeled(ctx: HandlerContext, event: IssuesLabeled) -> Outcome:
    label = event.label.name if event.label else None
    if label != ctx.settings.trigger_label:
        return ignored("not the trigger label")
    if is_bot(event.sender):
        return ignored("labeled by a bot")
    repo = repo_ref(event)
    if repo is None:
        return ignored("no installation in payload")
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
    return await ctx.hand_off(request, "accepted: run requested")
