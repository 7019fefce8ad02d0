"""``check_suite`` / ``check_run``: other apps' CI failing on Otto's PRs. Otto's own checks are ignored.

Check events come from CI apps, so unlike other events a bot sender is expected here.
"""

from __future__ import annotations

from app.domain.run import CiFailure
from app.events import App, CheckRunCompleted, CheckSuiteCompleted, PullNumber
from app.intake import IGNORED, HandlerContext, Outcome
from handlers.common import repo_ref

FAILED = frozenset({"failure", "timed_out"})


async def handle(ctx: HandlerContext, event: object) -> Outcome:
    app: App | None
    pulls: list[PullNumber]
    if isinstance(event, CheckSuiteCompleted):
        app, sha, conclusion, pulls = (
            event.check_suite.app,
            event.check_suite.head_sha,
            event.check_suite.conclusion,
            event.check_suite.pull_requests,
        )
    elif isinstance(event, CheckRunCompleted):
        app, sha, conclusion, pulls = (
            event.check_run.app,
            event.check_run.head_sha,
            event.check_run.conclusion,
            event.check_run.pull_requests,
        )
    else:
        return IGNORED
    if app is None or app.id == ctx.settings.github_app_id:
        return Outcome(202, "ignored: Otto's own check")
    if conclusion not in FAILED:
        return Outcome(202, f"ignored: check {conclusion}")
    repo = repo_ref(event)
    if repo is None or not pulls:
        return Outcome(202, "ignored: not on a pull request")
    request = CiFailure(
        repo=repo,
        head_sha=sha,
        pr_numbers=[p.number for p in pulls],
        app_name=app.slug or str(app.id),
        delivery_id=ctx.delivery_id,
    )
    if await ctx.handoff.submit(ctx.delivery_id, request):
        return Outcome(202, "accepted: CI failure")
    return Outcome(200, "duplicate delivery: already accepted")
