"""REST: repositories, collaborator permissions, contents, branches and git refs (read from real git)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from app.dev.simulator import gitrepo, render
from app.dev.simulator.errors import ApiError, not_found, validation_failed
from app.dev.simulator.http_util import (
    acting_user,
    authenticate,
    body_dict,
    json,
    no_content,
    paginate,
    sim_of,
)
from app.dev.simulator.state import PERMISSION_ORDER

router = APIRouter(prefix="/api/v3")

LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}


def permission_flags(level: str) -> dict[str, bool]:
    rank = PERMISSION_ORDER.index(level)
    return {
        "admin": rank >= PERMISSION_ORDER.index("admin"),
        "maintain": rank >= PERMISSION_ORDER.index("maintain"),
        "push": rank >= PERMISSION_ORDER.index("write"),
        "triage": rank >= PERMISSION_ORDER.index("triage"),
        "pull": rank >= PERMISSION_ORDER.index("read"),
    }


@router.get("/repos/{owner}/{repo}")
def get_repo(request: Request, owner: str, repo: str) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    with sim.lock:
        if actor.kind == "user" and actor.user is not None:
            flags = permission_flags(sim.permission_of(r, actor.user.login))
        else:
            flags = {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}
        open_issues = sum(1 for i in r.issues.values() if i.state == "open")
        return json(render.repo(r, sim.base_url, permissions=flags, open_issues=open_issues))


@router.get("/repos/{owner}/{repo}/collaborators/{username}/permission")
def get_permission(request: Request, owner: str, repo: str, username: str) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    with sim.lock:
        target = sim.users.get(username.lower())
        if target is None:
            raise not_found()
        level = sim.permission_of(r, target.login)
        user_json = render.user(target, sim.base_url) | {
            "permissions": permission_flags(level),
            "role_name": level,
        }
        return json({"permission": LEGACY_PERMISSION[level], "role_name": level, "user": user_json})


@router.get("/repos/{owner}/{repo}/contents/{path:path}")
def get_contents(request: Request, owner: str, repo: str, path: str) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    ref = request.query_params.get("ref") or r.default_branch
    path = path.strip("/")
    if gitrepo.resolve(r.path, ref) is None:
        raise ApiError(404, f"No commit found for the ref {ref}")
    kind = gitrepo.object_type(r.path, ref, path) if path else "tree"
    if kind is None:
        raise not_found()
    if kind == "tree":
        entries = [
            render.content_entry(r, sim.base_url, f"{path}/{name}" if path else name, ref, etype, sha, size)
            for etype, sha, name, size in gitrepo.list_tree(r.path, ref, path)
        ]
        return json(entries)
    data = gitrepo.read_blob(r.path, ref, path)
    sha = gitrepo.object_sha(r.path, ref, path)
    assert data is not None
    assert sha is not None
    return json(render.content_file(r, sim.base_url, path, ref, sha, data))


@router.get("/repos/{owner}/{repo}/branches")
def list_branches(request: Request, owner: str, repo: str) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    refs = sorted(
        (ref[len("refs/heads/") :], sha)
        for ref, sha in gitrepo.list_refs(r.path).items()
        if ref.startswith("refs/heads/")
    )
    items = [
        {
            "name": name,
            "commit": {"sha": sha, "url": f"{render.api(sim.base_url)}/repos/{r.full_name}/commits/{sha}"},
            "protected": False,
        }
        for name, sha in refs
    ]
    page, headers = paginate(request, items)
    return json(page, headers=headers)


@router.get("/repos/{owner}/{repo}/branches/{branch:path}")
def get_branch(request: Request, owner: str, repo: str, branch: str) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    sha = gitrepo.branch_sha(r.path, branch)
    if sha is None:
        raise ApiError(404, "Branch not found")
    return json(render.branch(branch, gitrepo.commit_info(r.path, sha), r, sim.base_url))


@router.get("/repos/{owner}/{repo}/git/ref/{ref:path}")
def get_ref(request: Request, owner: str, repo: str, ref: str) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo)
    full = f"refs/{ref}"
    sha = gitrepo.list_refs(r.path).get(full)
    if sha is None:
        raise not_found()
    return json(render.git_ref(full, sha, r, sim.base_url))


@router.post("/repos/{owner}/{repo}/git/refs")
def create_ref(request: Request, owner: str, repo: str, body: Annotated[Any, Body()] = None) -> JSONResponse:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="write")
    fields = body_dict(body)
    ref, sha = str(fields.get("ref", "")), str(fields.get("sha", ""))
    if not ref.startswith("refs/") or ref.count("/") < 2:
        raise ApiError(422, "Reference name must start with 'refs/' and have at least two slashes.")
    with sim.lock:
        if ref in gitrepo.list_refs(r.path):
            raise ApiError(422, "Reference already exists")
        if gitrepo.resolve(r.path, sha) != sha:
            raise validation_failed(
                [{"resource": "Reference", "field": "sha", "code": "invalid"}],
                message="Object does not exist",
            )
        gitrepo.update_ref(r.path, ref, sha, gitrepo.ZERO_SHA)
        sim.on_refs_changed(r, [(ref, None, sha)], acting_user(actor))
    return json(render.git_ref(ref, sha, r, sim.base_url), status=201)


@router.delete("/repos/{owner}/{repo}/git/refs/{ref:path}")
def delete_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
    actor = authenticate(request)
    sim = sim_of(request)
    r = sim.access_repo(actor, owner, repo, need="write")
    sim.delete_branch_ref(r, ref, acting_user(actor))
    return no_content()
