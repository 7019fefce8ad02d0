"""``push``: the repository's default branch moved (a person's push, or a merge): Otto's open task PRs into
it may now conflict, and their runs check."""

from __future__ import annotations

from app.contracts.messages import BaseMoved
from app.events import PushEvent
from app.routing import HandlerContext, Outcome, Routes, ignored
from handlers.common import repo_ref

routes = Routes()


@routes.register("push")
async def pushed(ctx: HandlerContext, event: PushEvent) -> Outcome:
    default = event.repository.default_branch if event.repository else None
    if default is None or event.ref != f"refs/heads/{default}":
        return ignored("not the default branch")
    if event.deleted:
        return ignored("the default branch was deleted")
    repo = repo_ref(event)
    if repo is None:
        return ignored("no installation in payload")
    # any sender, bots included: a merge by Otto (or another App) can make another run's PR conflict
    request = BaseMoved(
        repo=repo, branch=default, sha=event.after, sender=event.sender.login, delivery_id=ctx.delivery_id
    )
    return await ctx.hand_off(request, "accepted: runs with open PRs into it check them")
