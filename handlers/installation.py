"""``installation`` and ``installation_repositories``: the App installed, removed, suspended, or repositories
added to or taken out of its installation. Each is logged with the installation and its account. Removing
the App, suspending it, or taking repositories out stops the runs there (``app.workflows.lifecycle``)."""

from __future__ import annotations

import logging

from app.contracts.messages import InstallationChange
from app.domain.run import RepoRef
from app.events import InstallationEvent, InstallationRepositoriesEvent
from app.routing import HandlerContext, Outcome, Routes, ignored

log = logging.getLogger("otto.installation")

routes = Routes()


@routes.register(
    "installation", action=("created", "deleted", "suspend", "unsuspend", "new_permissions_accepted")
)
async def changed(ctx: HandlerContext, event: InstallationEvent) -> Outcome:
    inst = event.installation
    if inst is None:
        return ignored("no installation in payload")
    account = inst.account_name
    log.info(
        "installation %d (account %s): %s by @%s",
        inst.id,
        account or "?",
        event.action,
        event.sender.login,
    )
    if event.action not in ("deleted", "suspend"):
        return Outcome(200, f"installation {event.action} noted")
    request = InstallationChange(
        installation_id=inst.id,
        account=account,
        action="deleted" if event.action == "deleted" else "suspend",
        sender=event.sender.login,
        delivery_id=ctx.delivery_id,
    )
    return await ctx.hand_off(request, f"accepted: installation {event.action}")


@routes.register("installation_repositories", action=("added", "removed"))
async def repositories(ctx: HandlerContext, event: InstallationRepositoriesEvent) -> Outcome:
    inst = event.installation
    account = inst.account_name
    listed = event.repositories_removed if event.action == "removed" else event.repositories_added
    log.info(
        "installation %d (account %s): %d repositor%s %s by @%s: %s",
        inst.id,
        account or "?",
        len(listed),
        "y" if len(listed) == 1 else "ies",
        event.action,
        event.sender.login,
        ", ".join(r.full_name for r in listed[:20]) + (", …" if len(listed) > 20 else ""),
    )
    if event.action != "removed" or not listed:
        return Outcome(200, f"installation repositories {event.action} noted")
    removed = [
        RepoRef(installation_id=inst.id, owner=r.full_name.split("/")[0], name=r.name, repo_id=r.id)
        for r in event.repositories_removed
    ]
    request = InstallationChange(
        installation_id=inst.id,
        account=account,
        action="removed",
        repositories=removed,
        sender=event.sender.login,
        delivery_id=ctx.delivery_id,
    )
    return await ctx.hand_off(request, "accepted: installation repositories removed")
