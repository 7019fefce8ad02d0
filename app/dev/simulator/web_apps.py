"""The browser side of GitHub Apps: registration from a manifest (``/settings/apps/new``, the organization
variant) and installation (``/apps/{slug}/installations/new``). Pages are minimal HTML; who is signed in comes
from the ``user_session`` cookie (``sim.create_web_session(login)``). The code exchange is
``POST /api/v3/app-manifests/{code}/conversions``."""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.dev.simulator import render
from app.dev.simulator.app_manifests import ManifestError, parse_manifest
from app.dev.simulator.core import SimulatorError
from app.dev.simulator.errors import ApiError, not_found
from app.dev.simulator.http_util import json, sim_of
from app.dev.simulator.state import SimUser

router = APIRouter()
SESSION_COOKIE = "user_session"
MAX_FORM_BYTES = 256 * 1024


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)} · GitHub</title></head>"
    return HTMLResponse(f"{html}<body><h1>{escape(title)}</h1>{body}</body></html>", status_code=status)


async def form_fields(request: Request) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise ApiError(413, "Payload Too Large")
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def signed_in(request: Request) -> SimUser | None:
    return sim_of(request).session_user(request.cookies.get(SESSION_COOKIE))


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _new_app_page(request: Request) -> HTMLResponse:
    action = escape(str(request.url), quote=True)
    form = (
        f"<form method='post' action='{action}'><textarea name='manifest'></textarea>"
        "<button type='submit'>Create GitHub App</button></form>"
    )
    return page("Register new GitHub App", form)


async def _register(request: Request, org: str | None) -> Response:
    sim = sim_of(request)
    user = signed_in(request)
    if user is None:
        return page("Sign in to GitHub", "<p>You must be signed in to register a GitHub App.</p>", 401)
    owner = user
    if org is not None:
        with sim.lock:
            found = sim.users.get(org.lower())
        if found is None or found.type != "Organization":
            return page("Not Found", "<p>No such organization.</p>", 404)
        owner = found
    fields = await form_fields(request)
    try:
        manifest = parse_manifest(fields.get("manifest", ""))
        code = sim.register_app_from_manifest(owner, manifest)
    except ManifestError as exc:
        return page("Invalid GitHub App manifest", f"<p>{escape(str(exc))}</p>", 422)
    params = {"code": code.code}
    state = request.query_params.get("state")
    if state is not None:
        params["state"] = state
    return RedirectResponse(with_query(str(manifest["redirect_url"]), **params), status_code=302)


@router.get("/settings/apps/new")
def new_app_form(request: Request) -> HTMLResponse:
    return _new_app_page(request)


@router.post("/settings/apps/new")
async def new_app(request: Request) -> Response:
    return await _register(request, None)


@router.get("/organizations/{org}/settings/apps/new")
def new_org_app_form(request: Request, org: str) -> HTMLResponse:
    return _new_app_page(request)


@router.post("/organizations/{org}/settings/apps/new")
async def new_org_app(request: Request, org: str) -> Response:
    return await _register(request, org)


@router.get("/apps/{slug}/installations/new")
def install_form(request: Request, slug: str) -> HTMLResponse:
    sim = sim_of(request)
    try:
        app = sim.app_by_slug(slug)
    except SimulatorError:
        return page("Not Found", "<p>No such GitHub App.</p>", 404)
    user = signed_in(request)
    if user is None:
        return page("Sign in to GitHub", "<p>You must be signed in to install a GitHub App.</p>", 401)
    action = escape(str(request.url), quote=True)
    form = (
        f"<form method='post' action='{action}'>"
        f"<input type='hidden' name='target' value='{escape(user.login)}'>"
        f"<button type='submit'>Install {escape(app.name)}</button></form>"
    )
    return page(f"Install {app.name}", form)


@router.post("/apps/{slug}/installations/new")
async def install(request: Request, slug: str) -> Response:
    sim = sim_of(request)
    try:
        app = sim.app_by_slug(slug)
    except SimulatorError:
        return page("Not Found", "<p>No such GitHub App.</p>", 404)
    user = signed_in(request)
    if user is None:
        return page("Sign in to GitHub", "<p>You must be signed in to install a GitHub App.</p>", 401)
    target = (await form_fields(request)).get("target", user.login)
    # a user installs on their own account, or on the organization that owns the App
    allowed = {user.login.lower(), app.owner.login.lower() if app.owner.type == "Organization" else ""}
    if target.lower() not in allowed - {""}:
        return page("Forbidden", "<p>You cannot install this App on that account.</p>", 403)
    installation_id = sim.install_app(app.id, target)
    return page(
        f"Installed {app.name}", f"<p>Installation <code>{installation_id}</code> on {escape(target)}.</p>"
    )


@router.post("/api/v3/app-manifests/{code}/conversions")
def convert(request: Request, code: str) -> JSONResponse:
    sim = sim_of(request)
    try:
        app, found = sim.convert_manifest_code(code)
    except LookupError as exc:
        raise not_found() from exc
    except TimeoutError as exc:
        raise ApiError(422, "Validation Failed", errors=["The code has expired"]) from exc
    return json(
        render.integration(app, sim.base_url)
        | {
            "client_id": app.client_id,
            "client_secret": found.client_secret,
            "webhook_secret": found.webhook_secret,
            "pem": found.pem,
        },
        status=201,
    )
