"""``issue_comment``: `/otto` commands on issues and on Otto's PRs, handed to the run as signals."""

from __future__ import annotations

from app.contracts.messages import CommandRequest
from app.domain.commands import parse_command
from app.events import IssueCommentCreated
from app.routing import HandlerContext, Outcome, Routes, ignored
from handlers.common import is_bot, repo_ref

routes = Routes()


@routes.register("issue_comment", action="created")
async def created(ctx: HandlerContext, event: IssueCommentCreated) -> Outcome:
    if is_bot(event.sender) or is_bot(event.comment.user):
        return ignored("comment by a bot")
    command = parse_command(event.comment.body or "")
    if command is None:
        return ignored("no /otto command")
    repo = repo_ref(event)
    if repo is None:
        return ignored("no installation in payload")
    request = CommandRequest(
        repo=repo,
        number=event.issue.number,
        is_pull_request=event.issue.is_pull_request,
        sender=event.sender.login,
        comment_id=event.comment.id,
        delivery_id=ctx.delivery_id,
        command=command,
    )
    return await ctx.hand_off(request, f"accepted: /otto {command.word}")
