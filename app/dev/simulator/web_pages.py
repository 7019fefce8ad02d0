"""The pages a person clicks in the simulator: an issue (``/{owner}/{repo}/issues/{n}``) and a pull request
(``/{owner}/{repo}/pull/{n}``) — title, state, body, comments, and for a pull request its branches, merge
state, commits, check runs and reviews — so every link Otto writes opens something in the demo. Plain
server-rendered HTML; everything shown is escaped (bodies are people's and the model's words)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.dev.simulator import gitrepo
from app.dev.simulator.core import SimulatorError
from app.dev.simulator.errors import ApiError
from app.dev.simulator.http_util import sim_of
from app.dev.simulator.state import SimComment
from app.dev.simulator.web_apps import page

router = APIRouter()


def _comments(comments: list[SimComment]) -> str:
    if not comments:
        return "<p><em>No comments.</em></p>"
    return "".join(
        f"<article class='comment' id='issuecomment-{c.id}'><h3>@{escape(c.user.login)} commented "
        f"{c.created_at:%Y-%m-%d %H:%M} UTC</h3><pre>{escape(c.body)}</pre></article>"
        for c in comments
    )


def _missing(what: str) -> HTMLResponse:
    return page("Not Found", f"<p>No such {escape(what)}.</p>", 404)


@router.get("/{owner}/{repo}/issues/{number}", response_model=None)
def issue_page(request: Request, owner: str, repo: str, number: int) -> Response:
    sim = sim_of(request)
    try:
        issue = sim.issue(owner, repo, number)
        if issue.is_pull:
            return RedirectResponse(f"/{owner}/{repo}/pull/{number}", status_code=302)
        comments = sim.comments(owner, repo, number)
    except (SimulatorError, ApiError):
        return _missing("issue")
    labels = ", ".join(escape(label) for label in issue.labels) or "none"
    body = (
        f"<p class='state'>{escape(issue.state)} · opened by @{escape(issue.user.login)} · labels: "
        f"{labels}</p>"
        f"<pre class='body'>{escape(issue.body or '')}</pre><h2>Comments</h2>{_comments(comments)}"
    )
    return page(f"{issue.title} · Issue #{number} · {owner}/{repo}", body)


@router.get("/{owner}/{repo}/pull/{number}", response_model=None)
def pull_page(request: Request, owner: str, repo: str, number: int) -> Response:
    sim = sim_of(request)
    try:
        pull = sim.pull(owner, repo, number)
        comments = sim.comments(owner, repo, number)
        checks = sim.check_runs(owner, repo, pull.last_head_sha)
        path = sim.repo(owner, repo).path
    except (SimulatorError, ApiError):
        return _missing("pull request")
    state = "merged" if pull.merged else ("draft" if pull.draft and pull.state == "open" else pull.state)
    merged = f" by @{escape(pull.merged_by.login)}" if pull.merged and pull.merged_by else ""
    try:
        shas = gitrepo.git_out(path, "rev-list", f"{pull.last_base_sha}..{pull.last_head_sha}").split()
        commits = [gitrepo.commit_info(path, sha) for sha in shas]
    except Exception:  # a base or head gone from the repository: the rest of the page still answers
        commits = []
    commit_items = "".join(
        f"<li><code>{c.sha[:7]}</code> {escape(c.message.splitlines()[0] if c.message else '')}</li>"
        for c in commits
    )
    check_items = "".join(
        f"<li>{escape(c.name)}: {escape(c.conclusion or c.status)}"
        f"{' — ' + escape(str(c.output.get('title', ''))) if c.output.get('title') else ''}</li>"
        for c in checks
    )
    reviews = "".join(
        f"<li>@{escape(r.user.login)}: {escape(r.state.lower())} at <code>{r.commit_id[:7]}</code></li>"
        for r in pull.reviews
    )
    body = (
        f"<p class='state'>{escape(state)}{merged} · @{escape(pull.user.login)} wants to merge "
        f"<code>{escape(pull.head_ref)}</code> into <code>{escape(pull.base_ref)}</code> · head "
        f"<code>{pull.last_head_sha[:7]}</code></p>"
        f"<pre class='body'>{escape(pull.body or '')}</pre>"
        f"<h2>Commits</h2><ul>{commit_items or '<li><em>none</em></li>'}</ul>"
        f"<h2>Checks</h2><ul>{check_items or '<li><em>none</em></li>'}</ul>"
        f"<h2>Reviews</h2><ul>{reviews or '<li><em>none</em></li>'}</ul>"
        f"<h2>Comments</h2>{_comments(comments)}"
    )
    return page(f"{pull.title} · Pull Request #{number} · {owner}/{repo}", body)
