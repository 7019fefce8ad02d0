"""``issues``: labeling an issue with the trigger label asks for a run; closing it stops the run."""

from __future__ import annotations

from collections.abc import Sequence

from app.contracts.messages import IssueClosed, IssueEdited, StartRun, Trigger
from app.events import IssuesClosed, IssuesEdited, IssuesLabeled, IssuesUnlabeled
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


@routes.register("issues", action="edited")
async def edited(ctx: HandlerContext, event: IssuesEdited) -> Outcome:
    """The title or body changed: a run on the issue says it saw the edit (and that it keeps the labeled
    text: an edit never reaches the model on its own)."""
    fields = sorted(f for f in ("title", "body") if f in event.changes)
    if not fields:
        return ignored("nothing a run reads changed")
    return await tell_the_run(ctx, event, fields, "edited by a bot")


@routes.register("issues", action="unlabeled")
async def unlabeled(ctx: HandlerContext, event: IssuesUnlabeled) -> Outcome:
    """The trigger label removed: a run on the issue goes on and says so (removing it stops nothing)."""
    if (event.label.name if event.label else None) != ctx.settings.trigger_label:
        return ignored("not the trigger label")
    return await tell_the_run(ctx, event, ["label"], "unlabeled by a bot")


async def tell_the_run(
    ctx: HandlerContext, event: IssuesEdited | IssuesUnlabeled, fields: Sequence[str], by_bot: str
) -> Outcome:
    """A person changed what a run on the issue reads (``fields``): the run is told and says so."""
    if is_bot(event.sender):
        return ignored(by_bot)
    repo = repo_ref(event)
    if repo is None:
        return ignored("no installation in payload")
    request = IssueEdited(
        repo=repo,
        issue_number=event.issue.number,
        sender=event.sender.login,
        fields=list(fields),
        delivery_id=ctx.delivery_id,
    )
    return await ctx.hand_off(request, "accepted: a run on this issue is told")


@routes.register("issues", action="closed")
async def closed(ctx: HandlerContext, event: IssuesClosed) -> Outcome:
    """GitHub let the sender close it (a writer, or its author): a run on it stops, nothing more is pushed."""
    if is_bot(event.sender):
        return ignored("closed by a bot")
    repo = repo_ref(event)
    if repo is None:
        return ignored("no installation in payload")
    request = IssueClosed(
        repo=repo, issue_number=event.issue.number, sender=event.sender.login, delivery_id=ctx.delivery_id
    )
    return await ctx.hand_off(request, "accepted: a run on this issue stops")
