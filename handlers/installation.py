"""``installation``: the App was installed, changed or removed. Logged; nothing to start."""

from __future__ import annotations

import logging

from app.intake import HandlerContext, Outcome

log = logging.getLogger("otto.installation")


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    action = getattr(event, "action", "?")
    installation = getattr(event, "installation", None)
    log.info("installation %s: %s", getattr(installation, "id", "?"), action)
    return Outcome(200, f"installation {action} noted")
