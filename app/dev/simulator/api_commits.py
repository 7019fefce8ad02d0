"""REST: commits of a repository (list, and one commit with its stats and files), read from real git."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.dev.simulator import gitrepo, render
from app.dev.simulator.errors import ApiError
from app.dev.simulator.http_util import authenticate, json, paginate, sim_of

router = APIRouter(prefix="/api/v3")
REPO = "/repos/{owner}/{repo}"
MAX_LISTED = 10_000


@router.get(REPO + "/commits")
def list_commits(request: Request, owner: str, repo: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    ref = request.query_params.get("sha") or r.default_branch
    head = gitrepo.resolve(r.path, ref)
    if head is None:
        if not request.query_params.get("sha") and not gitrepo.list_refs(r.path):
            raise ApiError(409, "Git Repository is empty.")
        raise ApiError(404, f"No commit found for SHA: {ref}")
    path = (request.query_params.get("path") or "").strip("/") or None
    shas = gitrepo.rev_list(r.path, head, path, MAX_LISTED)
    page, headers = paginate(request, shas)
    return json(
        [render.commit(gitrepo.commit_info(r.path, sha), r, sim.base_url) for sha in page], headers=headers
    )


# registered after ``/commits/{ref}/check-runs`` (api_checks): a ref may contain slashes
@router.get(REPO + "/commits/{ref:path}")
def get_commit(request: Request, owner: str, repo: str, ref: str) -> JSONResponse:
    sim = sim_of(request)
    r = sim.access_repo(authenticate(request), owner, repo)
    sha = gitrepo.resolve(r.path, ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    info = gitrepo.commit_info(r.path, sha)
    return json(render.commit_detail(info, gitrepo.commit_changes(r.path, sha), r, sim.base_url))
