"""``issue_comment``: `/otto` commands on issues and Otto's PRs."""

from __future__ import annotations

from app.events import IssueCommentCreated
from app.intake import IGNORED, HandlerContext, Outcome
from handlers.common import is_bot


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    if not isinstance(event, IssueCommentCreated):
        return IGNORED
    if is_bot(event.sender) or is_bot(event.comment.user):
        return Outcome(202, "ignored: comment by a bot")
    if not any(line.strip().startswith("/otto") for line in (event.comment.body or "").splitlines()):
        return Outcome(202, "ignored: no /otto command")
    # Command handling (retry, stop, status, help) is the next milestone; acknowledge without acting.
    return Outcome(202, "ignored: /otto commands are not handled by this version")
