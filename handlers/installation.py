"""``installation``: the App was installed, changed or removed. Logged; nothing to start."""

from __future__ import annotations

import logging

from app.events import InstallationEvent
from app.routing import HandlerContext, Outcome, Routes

log = logging.getLogger("otto.installation")

routes = Routes()


@routes.register(
    "installation", action=("created", "deleted", "suspend", "unsuspend", "new_permissions_accepted")
)
async def changed(ctx: HandlerContext, event: InstallationEvent) -> Outcome:
    log.info("installation %s: %s", event.installation.id if event.installation else "?", event.action)
    return Outcome(200, f"installation {event.action} noted")
