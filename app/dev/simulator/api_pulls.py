"""REST: pull requests, their files and commits, merging, reviews and review comments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from app.dev.simulator import gitrepo, render
from app.dev.simulator.errors import not_found, validation_failed
from app.dev.simulator.http_util import (
    acting_user,
    authenticate,
    body_dict,
    json,
    no_content,
    paginate,
    sim_of,
    via_app,
)
from app.dev.simulator.pulls import REVIEW_EVENTS

router = APIRouter(prefix="/api/v3")
REPO = "/repos/{owner}/{repo}"


@router.get(REPO + "/pulls")
def list_pulls(request: Request, owner: str, repo: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    q = request.query_params
    state = q.get("state") or "open"
    if state not in ("open", "closed", "all"):
        raise validation_failed([{"resource": "PullRequest", "field": "state", "code": "invalid"}])
    pulls = sim.list_pulls(r, state, q.get("head"), q.get("base"), q.get("direction") or "desc")
    page, headers = paginate(request, pulls)
    return json([sim.render_pull(r, p) for p in page], headers=headers)


@router.post(REPO + "/pulls")
def create_pull(request: Request, owner: str, repo: str, body: Annotated[Any, Body()] = None) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="read")
    pull = sim.create_pull(r, body_dict(body), acting_user(actor), via_app(actor))
    return json(sim.render_pull(r, pull), status=201)


@router.get(REPO + "/pulls/comments/{comment_id}")
def get_review_comment(request: Request, owner: str, repo: str, comment_id: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    with sim.lock:
        for p in r.pulls.values():
            for c in p.review_comments:
                if c.id == comment_id:
                    return json(render.review_comment(c, p, r, sim.base_url))
    raise not_found()


@router.get(REPO + "/pulls/{number}")
def get_pull(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    return json(sim.render_pull(r, sim.get_pull(r, number)))


@router.patch(REPO + "/pulls/{number}")
def update_pull(
    request: Request, owner: str, repo: str, number: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="write")
    pull = sim.update_pull(r, number, body_dict(body), acting_user(actor))
    return json(sim.render_pull(r, pull))


@router.get(REPO + "/pulls/{number}/files")
def list_files(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    pull = sim.get_pull(r, number)
    changes = sim.pull_files(r, pull)
    page, headers = paginate(request, changes)
    return json([render.diff_entry(c, r, sim.base_url, pull.last_head_sha) for c in page], headers=headers)


@router.get(REPO + "/pulls/{number}/commits")
def list_commits(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    pull = sim.get_pull(r, number)
    with sim.lock:
        sim.refresh_pull(r, pull)
        shas = gitrepo.commits_between(r.path, pull.last_base_sha, pull.last_head_sha)
    page, headers = paginate(request, shas)
    return json(
        [render.commit(gitrepo.commit_info(r.path, sha), r, sim.base_url) for sha in page], headers=headers
    )


@router.put(REPO + "/pulls/{number}/merge")
def merge_pull(
    request: Request, owner: str, repo: str, number: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="write")
    fields = body_dict(body)
    sha = sim.merge_pull(
        r,
        number,
        acting_user(actor),
        fields.get("sha"),
        str(fields.get("merge_method") or "merge"),
        fields.get("commit_title"),
        fields.get("commit_message"),
    )
    return json({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})


@router.get(REPO + "/pulls/{number}/merge")
def is_merged(request: Request, owner: str, repo: str, number: int) -> Response:
    """204 when the pull request was merged, else 404: without a body as documented (an unknown number gets
    the usual JSON "Not Found")."""
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    if not sim.get_pull(r, number).merged:
        return Response(status_code=404)
    return no_content()


@router.get(REPO + "/pulls/{number}/reviews/{review_id}")
def get_review(request: Request, owner: str, repo: str, number: int, review_id: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    pull = sim.get_pull(r, number)
    with sim.lock:
        found = next((rv for rv in pull.reviews if rv.id == review_id), None)
        if found is None:
            raise not_found()
        return json(render.review(found, pull, r, sim.base_url))


@router.get(REPO + "/pulls/{number}/reviews")
def list_reviews(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    pull = sim.get_pull(r, number)
    with sim.lock:
        items = [render.review(rv, pull, r, sim.base_url) for rv in pull.reviews]
    page, headers = paginate(request, items)
    return json(page, headers=headers)


@router.post(REPO + "/pulls/{number}/reviews")
def create_review(
    request: Request, owner: str, repo: str, number: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    fields = body_dict(body)
    event = str(fields.get("event") or "")
    if event not in REVIEW_EVENTS:
        raise validation_failed([{"resource": "PullRequestReview", "field": "event", "code": "invalid"}])
    review, _ = sim.add_review(
        r,
        number,
        acting_user(actor),
        REVIEW_EVENTS[event],
        str(fields.get("body") or ""),
        fields.get("commit_id"),
        list(fields.get("comments") or []),
        sync=False,
    )
    return json(render.review(review, sim.get_pull(r, number), r, sim.base_url))


@router.get(REPO + "/pulls/{number}/reviews/{review_id}/comments")
def list_review_comments(
    request: Request, owner: str, repo: str, number: int, review_id: int
) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    pull = sim.get_pull(r, number)
    with sim.lock:
        if not any(rv.id == review_id for rv in pull.reviews):
            raise not_found()
        items = [
            render.review_comment(c, pull, r, sim.base_url)
            for c in pull.review_comments
            if c.review_id == review_id
        ]
    page, headers = paginate(request, items)
    return json(page, headers=headers)


@router.get(REPO + "/pulls/{number}/comments")
def list_pull_comments(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    pull = sim.get_pull(r, number)
    with sim.lock:
        items = [render.review_comment(c, pull, r, sim.base_url) for c in pull.review_comments]
    page, headers = paginate(request, items)
    return json(page, headers=headers)
