"""REST: issues, issue comments, labels and reactions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from app.dev.simulator import render
from app.dev.simulator.errors import ApiError, validation_failed
from app.dev.simulator.http_util import acting_user, authenticate, body_dict, json, paginate, sim_of, via_app
from app.dev.simulator.state import PERMISSION_ORDER, SimReaction

router = APIRouter(prefix="/api/v3")
REPO = "/repos/{owner}/{repo}"


# The literal routes come before ``/issues/{number}``: "comments" is not an issue number.
@router.get(REPO + "/issues")
def list_issues(request: Request, owner: str, repo: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    found = sim.list_issues(r, dict(request.query_params))
    page, headers = paginate(request, found)
    return json([sim.render_issue(r, i) for i in page], headers=headers)


@router.post(REPO + "/issues")
def create_issue(
    request: Request, owner: str, repo: str, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    user = acting_user(actor)
    may_label = actor.kind == "installation" or PERMISSION_ORDER.index(
        sim.permission_of(r, user.login)
    ) >= PERMISSION_ORDER.index("triage")
    issue = sim.create_issue_from_fields(r, body_dict(body), user, may_label)
    return json(sim.render_issue(r, issue), status=201)


@router.get(REPO + "/issues/comments")
def list_repo_comments(request: Request, owner: str, repo: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    found = sim.list_repo_comments(r, dict(request.query_params))
    page, headers = paginate(request, found)
    return json([sim.render_comment(r, c) for c in page], headers=headers)


@router.get(REPO + "/issues/{number}")
def get_issue(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    return json(sim.render_issue(r, sim.get_issue(r, number)))


@router.patch(REPO + "/issues/{number}")
def update_issue(
    request: Request, owner: str, repo: str, number: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="triage")
    issue = sim.update_issue(r, number, body_dict(body), acting_user(actor))
    return json(sim.render_issue(r, issue))


@router.get(REPO + "/issues/{number}/comments")
def list_comments(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    with sim.lock:
        issue = sim.get_issue(r, number)
        items = [sim.render_comment(r, r.comments[cid]) for cid in issue.comment_ids]
    page, headers = paginate(request, items)
    return json(page, headers=headers)


@router.post(REPO + "/issues/{number}/comments")
def create_comment(
    request: Request, owner: str, repo: str, number: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    text = body_dict(body).get("body")
    created, _ = sim.add_comment(r, number, str(text or ""), acting_user(actor), via_app(actor), sync=False)
    return json(sim.render_comment(r, created), status=201)


@router.get(REPO + "/issues/comments/{comment_id}")
def get_comment(request: Request, owner: str, repo: str, comment_id: int) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    return json(sim.render_comment(r, sim.get_comment(r, comment_id)))


@router.patch(REPO + "/issues/comments/{comment_id}")
def update_comment(
    request: Request, owner: str, repo: str, comment_id: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    user = acting_user(actor)
    with sim.lock:
        existing = sim.get_comment(r, comment_id)
        if (
            actor.kind == "user"
            and existing.user is not user
            and sim.permission_of(r, user.login) not in ("write", "maintain", "admin")
        ):
            raise ApiError(403, "You must have write access to edit this comment")
    edited = sim.edit_comment(r, comment_id, str(body_dict(body).get("body") or ""), user)
    return json(sim.render_comment(r, edited))


def _reaction_target(
    request: Request, owner: str, repo: str, number: int | None, comment_id: int | None
) -> tuple[list[SimReaction], str]:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    if comment_id is not None:
        return sim.get_comment(r, comment_id).reactions, "comment"
    assert number is not None
    return sim.get_issue(r, number).reactions, "issue"


def _post_reaction(request: Request, target: list[SimReaction], body: Any) -> JSONResponse:
    sim = sim_of(request)
    content = body_dict(body).get("content")
    if not content:
        raise validation_failed([{"resource": "Reaction", "field": "content", "code": "missing_field"}])
    actor = request.scope["sim.actor"]
    reaction, created = sim.add_reaction(target, str(content), acting_user(actor))
    return json(render.reaction(reaction, sim.base_url), status=201 if created else 200)


def _list_reactions(request: Request, target: list[SimReaction]) -> JSONResponse:
    sim = sim_of(request)
    content = request.query_params.get("content")
    with sim.lock:
        items = [
            render.reaction(rx, sim.base_url) for rx in target if content is None or rx.content == content
        ]
    page, headers = paginate(request, items)
    return json(page, headers=headers)


@router.post(REPO + "/issues/{number}/reactions")
def react_issue(
    request: Request, owner: str, repo: str, number: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    target, _ = _reaction_target(request, owner, repo, number, None)
    return _post_reaction(request, target, body)


@router.get(REPO + "/issues/{number}/reactions")
def list_issue_reactions(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    target, _ = _reaction_target(request, owner, repo, number, None)
    return _list_reactions(request, target)


@router.post(REPO + "/issues/comments/{comment_id}/reactions")
def react_comment(
    request: Request, owner: str, repo: str, comment_id: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    target, _ = _reaction_target(request, owner, repo, None, comment_id)
    return _post_reaction(request, target, body)


@router.get(REPO + "/issues/comments/{comment_id}/reactions")
def list_comment_reactions(request: Request, owner: str, repo: str, comment_id: int) -> JSONResponse:
    target, _ = _reaction_target(request, owner, repo, None, comment_id)
    return _list_reactions(request, target)


def _labels_json(request: Request, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
    sim = sim_of(request)
    r = sim.repo(owner, repo)
    with sim.lock:
        return [render.label(r.labels[name], r, sim.base_url) for name in sim.get_issue(r, number).labels]


@router.get(REPO + "/issues/{number}/labels")
def list_labels(request: Request, owner: str, repo: str, number: int) -> JSONResponse:
    sim = sim_of(request)
    sim.access_repo(authenticate(request), owner, repo)
    page, headers = paginate(request, _labels_json(request, owner, repo, number))
    return json(page, headers=headers)


@router.post(REPO + "/issues/{number}/labels")
def add_labels(
    request: Request, owner: str, repo: str, number: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="triage")
    raw = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(raw, list) or not raw:
        raise validation_failed([{"resource": "Label", "field": "labels", "code": "missing_field"}])
    names = [str(item["name"]) if isinstance(item, dict) else str(item) for item in raw]
    sim.add_labels(r, number, names, acting_user(actor), sync=False)
    return json(_labels_json(request, owner, repo, number))


@router.delete(REPO + "/issues/{number}/labels/{name}")
def remove_label(request: Request, owner: str, repo: str, number: int, name: str) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="triage")
    sim.remove_label(r, number, name, acting_user(actor))
    return json(_labels_json(request, owner, repo, number))
