"""REST: the App itself (JWT), installation tokens, users."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from app.dev.simulator import render
from app.dev.simulator.errors import not_found
from app.dev.simulator.http_util import authenticate, json, sim_of
from app.dev.simulator.state import iso

router = APIRouter(prefix="/api/v3")


@router.get("/app")
def get_app(request: Request) -> JSONResponse:
    actor = authenticate(request, ("app",))
    sim = sim_of(request)
    assert actor.app is not None
    with sim.lock:
        count = sum(1 for i in sim.installations.values() if i.app_id == actor.app.id)
        return json(render.integration(actor.app, sim.base_url, installations_count=count))


@router.get("/app/installations")
def list_installations(request: Request) -> JSONResponse:
    actor = authenticate(request, ("app",))
    sim = sim_of(request)
    assert actor.app is not None
    with sim.lock:
        return json(
            [
                render.installation(i, actor.app, sim.base_url)
                for i in sim.installations.values()
                if i.app_id == actor.app.id
            ]
        )


@router.get("/app/installations/{installation_id}")
def get_installation(request: Request, installation_id: int) -> JSONResponse:
    actor = authenticate(request, ("app",))
    sim = sim_of(request)
    with sim.lock:
        inst = sim.installations.get(installation_id)
        if inst is None or actor.app is None or inst.app_id != actor.app.id:
            raise not_found()
        return json(render.installation(inst, actor.app, sim.base_url))


@router.post("/app/installations/{installation_id}/access_tokens")
def create_access_token(
    request: Request, installation_id: int, body: Annotated[Any, Body()] = None
) -> JSONResponse:
    actor = authenticate(request, ("app",))
    sim = sim_of(request)
    token, inst = sim.issue_installation_token(actor, installation_id)
    app = sim.app(inst.app_id)
    return json(
        {
            "token": token.token,
            "expires_at": iso(token.expires_at),
            "permissions": dict(app.permissions),
            "repository_selection": "all",
        },
        status=201,
    )


@router.get("/installation/repositories")
def list_installation_repositories(request: Request, per_page: int = 30, page: int = 1) -> JSONResponse:
    """The repositories the installation (its token) can reach, paginated like GitHub."""
    actor = authenticate(request, ("installation",))
    sim = sim_of(request)
    assert actor.installation is not None
    per_page = max(1, min(per_page, 100))
    with sim.lock:
        repos = sorted(sim.installation_repositories(actor.installation), key=lambda r: r.id)
        chunk = repos[(page - 1) * per_page : page * per_page]
        selection = "all" if actor.installation.repository_ids is None else "selected"
        body = {
            "total_count": len(repos),
            "repository_selection": selection,
            "repositories": [render.repo(r, sim.base_url) for r in chunk],
        }
    headers = {}
    if page * per_page < len(repos):
        url = f"{sim.base_url}/api/v3/installation/repositories?per_page={per_page}&page={page + 1}"
        headers["Link"] = f'<{url}>; rel="next"'
    return json(body, headers=headers)


@router.get("/repos/{owner}/{repo}/installation")
def get_repo_installation(request: Request, owner: str, repo: str) -> JSONResponse:
    actor = authenticate(request, ("app",))
    sim = sim_of(request)
    assert actor.app is not None
    with sim.lock:
        found = sim.repos.get((owner.lower(), repo.lower()))
        if found is None:
            raise not_found()
        inst = sim.installation_for(actor.app.id, found.owner.login)
        if inst is None:
            raise not_found()
        return json(render.installation(inst, actor.app, sim.base_url))


def _account_installation(request: Request, login: str, organizations_only: bool) -> JSONResponse:
    actor = authenticate(request, ("app",))
    sim = sim_of(request)
    assert actor.app is not None
    with sim.lock:
        account = sim.users.get(login.lower())
        if account is None or (organizations_only and account.type != "Organization"):
            raise not_found()
        inst = sim.installation_for(actor.app.id, account.login)
        if inst is None:
            raise not_found()
        return json(render.installation(inst, actor.app, sim.base_url))


@router.get("/orgs/{org}/installation")
def get_org_installation(request: Request, org: str) -> JSONResponse:
    return _account_installation(request, org, organizations_only=True)


@router.get("/users/{username}/installation")
def get_user_installation(request: Request, username: str) -> JSONResponse:
    return _account_installation(request, username, organizations_only=False)


@router.get("/users/{username}")
def get_user(request: Request, username: str) -> JSONResponse:
    authenticate(request, ("app", "installation", "user"))
    sim = sim_of(request)
    with sim.lock:
        found = sim.users.get(username.lower())
        if found is None:
            raise not_found()
        public_repos = sum(1 for r in sim.repos.values() if r.owner is found and not r.private)
        return json(render.public_user(found, sim.base_url, public_repos))
