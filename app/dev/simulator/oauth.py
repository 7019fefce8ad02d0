"""The user authorization flow of a GitHub App (web application flow), and ``GET /user``.

``GET /login/oauth/authorize?client_id&redirect_uri&state`` shows a tiny page: one button per simulated
person ("sign in as ..."; the simulator has no browser sessions), or, with ``login=NAME``, signs in as that
person at once. Either way the browser is redirected to ``redirect_uri?code=...&state=...``.
``POST /login/oauth/access_token`` exchanges the code (single use, 10 minutes, bound to the client and the
redirect URI) with the client id and secret for a user token (``ghu_...``) that the REST API accepts with
that person's own permissions. Errors are answered like GitHub: 200 with ``error`` and ``error_description``.
"""

from __future__ import annotations

import html
import json as jsonlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from app.dev.simulator import render
from app.dev.simulator.auth import new_token
from app.dev.simulator.errors import ApiError
from app.dev.simulator.http_util import authenticate, json, sim_of
from app.dev.simulator.state import SimApp, SimToken, now

router = APIRouter()

CODE_TTL_S = 600
USER_TOKEN_TTL = timedelta(hours=8)


@dataclass
class OAuthCode:
    client_id: str
    login: str
    redirect_uri: str | None
    expires: float


def _app_by_client(request: Request, client_id: str) -> SimApp | None:
    sim = sim_of(request)
    with sim.lock:
        return next((a for a in sim.apps.values() if a.client_id == client_id), None)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


def _redirect_ok(app: SimApp, redirect_uri: str | None) -> bool:
    if redirect_uri is None:
        return app.callback_url is not None
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return app.callback_url is None or redirect_uri.startswith(app.callback_url)


def _grant(request: Request, app: SimApp, login: str, redirect_uri: str | None, state: str) -> Response:
    sim = sim_of(request)
    with sim.lock:
        person = sim.users.get(login.lower())
        if person is None or person.type != "User":
            return _page("Unknown user", f"<p>No person called {html.escape(login)}.</p>", 404)
        code = secrets.token_hex(10)
        sim.oauth_codes[code] = OAuthCode(app.client_id, person.login, redirect_uri, time.time() + CODE_TTL_S)
    target = redirect_uri or app.callback_url or ""
    sep = "&" if urlsplit(target).query else "?"
    return RedirectResponse(target + sep + urlencode({"code": code, "state": state}), status_code=302)


@router.get("/login/oauth/authorize")
def authorize(request: Request) -> Response:
    q = request.query_params
    app = _app_by_client(request, q.get("client_id", ""))
    if app is None:
        return _page("Not found", "<p>No application with that client id.</p>", 404)
    redirect_uri = q.get("redirect_uri")
    if not _redirect_ok(app, redirect_uri):
        return _page("Redirect URI mismatch", "<p>The redirect_uri is not this application's.</p>", 400)
    state = q.get("state", "")
    if q.get("login"):
        return _grant(request, app, q["login"], redirect_uri, state)
    sim = sim_of(request)
    with sim.lock:
        people = sorted(u.login for u in sim.users.values() if u.type == "User")
    hidden = "".join(
        f"<input type='hidden' name='{k}' value='{html.escape(v, quote=True)}'>"
        for k, v in (("client_id", app.client_id), ("redirect_uri", redirect_uri or ""), ("state", state))
    )
    buttons = "".join(
        f"<li><form method='post' action='/login/oauth/authorize'>{hidden}"
        f"<button name='login' value='{html.escape(p, quote=True)}'>Sign in as {html.escape(p)}</button>"
        "</form></li>"
        for p in people
    )
    return _page(
        f"Authorize {app.name}", f"<p>Sign in to continue to {html.escape(app.name)}.</p><ul>{buttons}</ul>"
    )


@router.post("/login/oauth/authorize")
async def authorize_as(request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace")))
    app = _app_by_client(request, form.get("client_id", ""))
    if app is None:
        return _page("Not found", "<p>No application with that client id.</p>", 404)
    redirect_uri = form.get("redirect_uri") or None
    if not _redirect_ok(app, redirect_uri):
        return _page("Redirect URI mismatch", "<p>The redirect_uri is not this application's.</p>", 400)
    return _grant(request, app, form.get("login", ""), redirect_uri, form.get("state", ""))


def _answer(request: Request, data: dict[str, str]) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(data)
    return PlainTextResponse(urlencode(data), media_type="application/x-www-form-urlencoded")


def _error(request: Request, error: str, description: str) -> Response:
    return _answer(
        request,
        {
            "error": error,
            "error_description": description,
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
        },
    )


@router.post("/login/oauth/access_token")
async def access_token(request: Request) -> Response:
    raw = await request.body()
    params: dict[str, str] = dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = jsonlib.loads(raw or b"{}")
        except ValueError:
            body = {}
        if isinstance(body, dict):
            params.update({k: str(v) for k, v in body.items()})
    else:
        params.update(dict(parse_qsl(raw.decode("utf-8", errors="replace"))))
    app = _app_by_client(request, params.get("client_id", ""))
    if app is None or not secrets.compare_digest(params.get("client_secret", ""), app.client_secret):
        return _error(
            request,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        )
    sim = sim_of(request)
    with sim.lock:
        grant = sim.oauth_codes.pop(params.get("code", ""), None)
    if not isinstance(grant, OAuthCode) or grant.client_id != app.client_id or grant.expires < time.time():
        return _error(request, "bad_verification_code", "The code passed is incorrect or expired.")
    if (
        grant.redirect_uri is not None
        and params.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri
    ):
        return _error(
            request,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        )
    with sim.lock:
        token = SimToken(token=new_token("ghu_"), expires_at=now() + USER_TOKEN_TTL, login=grant.login)
        sim.tokens[token.token] = token
    return _answer(
        request,
        {
            "access_token": token.token,
            "expires_in": str(int(USER_TOKEN_TTL.total_seconds())),
            "scope": "",
            "token_type": "bearer",
        },
    )


@router.get("/api/v3/user")
def authenticated_user(request: Request) -> JSONResponse:
    actor = authenticate(request, ("installation", "user"))
    if actor.kind != "user" or actor.user is None:
        raise ApiError(403, "Resource not accessible by integration")
    sim = sim_of(request)
    with sim.lock:
        u = actor.user
        public_repos = sum(1 for r in sim.repos.values() if r.owner is u and not r.private)
        return json(render.public_user(u, sim.base_url, public_repos))
