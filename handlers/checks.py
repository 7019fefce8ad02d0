"""``check_suite`` / ``check_run``: other apps' CI failing on Otto's PRs. Otto's own checks are ignored.

Check events come from CI apps, so unlike other events a bot sender is expected here.
"""

from __future__ import annotations

from app.contracts.messages import CiFailure
from app.events import App, CheckRunCompleted, CheckSuiteCompleted, Event, PullNumber
from app.routing import HandlerContext, Outcome, Routes, ignored
from handlers.common import repo_ref

FAILED = frozenset({"failure", "timed_out"})

routes = Routes()


@routes.register("check_suite", action="completed")
async def suite_completed(ctx: HandlerContext, event: CheckSuiteCompleted) -> Outcome:
    s = event.check_suite
    return await _completed(ctx, event, s.app, s.head_sha, s.conclusion, s.pull_requests)


@routes.register("check_run", action="completed")
async def run_completed(ctx: HandlerContext, event: CheckRunCompleted) -> Outcome:
    r = event.check_run
    return await _completed(ctx, event, r.app, r.head_sha, r.conclusion, r.pull_requests)


async def _completed(
    ctx: HandlerContext,
    event: Event,
    app: App | None,
    sha: str,
    conclusion: str | None,
    pulls: list[PullNumber],
) -> Outcome:
    if app is None or app.id == ctx.settings.github_app_id:
        return ignored("Otto's own check")
    if conclusion not in FAILED:
        return ignored(f"check {conclusion}")
    repo = repo_ref(event)
    if repo is None or not pulls:
        return ignored("not on a pull request")
    request = CiFailure(
        repo=repo,
        head_sha=sha,
        pr_numbers=[p.number for p in pulls],
        app_name=app.slug or str(app.id),
        delivery_id=ctx.delivery_id,
    )
    return await ctx.hand_off(request, "accepted: CI failure")
