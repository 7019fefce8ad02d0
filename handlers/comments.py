"""``issue_comment``: `/otto` commands on issues and on Otto's PRs, handed to the run as signals."""

from __future__ import annotations

from app.domain.commands import parse_command
from app.domain.run import CommandRequest
from app.events import IssueCommentCreated
from app.intake import IGNORED, HandlerContext, Outcome
from handlers.common import is_bot, repo_ref


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    if not isinstance(event, IssueCommentCreated):
        return IGNORED
    if is_bot(event.sender) or is_bot(event.comment.user):
        return Outcome(202, "ignored: comment by a bot")
    command = parse_command(event.comment.body or "")
    if command is None:
        return Outcome(202, "ignored: no /otto command")
    repo = repo_ref(event)
    if repo is None:
        return Outcome(202, "ignored: no installation in payload")
    request = CommandRequest(
        repo=repo,
        number=event.issue.number,
        is_pull_request=event.issue.is_pull_request,
        sender=event.sender.login,
        comment_id=event.comment.id,
        delivery_id=ctx.delivery_id,
        command=command,
    )
    if await ctx.handoff.submit(ctx.delivery_id, request):
        return Outcome(202, f"accepted: /otto {command.word}")
    return Outcome(200, "duplicate delivery: already accepted")
