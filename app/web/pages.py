"""Mission Control's routes: ``/runs`` (list), a run, an attempt, their live fragments, raw artifacts, the
stop and retry actions, and sign-in (``/login``, ``/login/callback``, ``/logout``).

Every page needs a signed-in person (else the sign-in page, 401) who can read the run's repository (else the
same 404 as for a run that doesn't exist, so nothing leaks). Actions need write access, asked afresh, and
the session's CSRF token; they are delivered as the `/otto stop` and `/otto retry` comment commands are: a
signal to the run's workflow. Templates autoescape; raw texts are served as text/plain with nosniff.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from app.activities.intake import IntakeActivities
from app.artifacts import ArtifactInfo, ArtifactKeyError, ArtifactStore, attempt_prefix, check_key, run_key
from app.contracts.ids import run_workflow_id
from app.contracts.io import SignalInput
from app.contracts.messages import RetryRequest, StopRequest
from app.domain.links import RUN_REF, run_path
from app.domain.run import TaskRecord, TaskStatus
from app.domain.snapshot import RunSnapshot, phase_label
from app.domain.transcript import Conversation, piece
from app.github_auth import GitHubApp
from app.settings import Settings
from app.web import views
from app.web.access import Access, can_read, can_write
from app.web.catalog import RunCatalog
from app.web.reader import LRU, CachedReads
from app.web.sessions import Sessions as SessionStore
from app.web.sessions import SignInError, User, safe_next

log = logging.getLogger("otto.web")

MAX_FORM_BYTES = 16_384
GUIDANCE_CHARS = 2_000
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SENT = {
    "stop": "Stop sent: the run stops at its next step and pushes nothing more.",
    "retry": "Retry sent: the task runs again; this page follows it.",
}


def _age(then: datetime, now: datetime) -> str:
    return views.duration((now - then).total_seconds())


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("app", "templates/web"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    money=views.money,
    duration=views.duration,
    tokens=views.tokens,
    phase=phase_label,
    task_state=views.task_state,
    pid=lambda ref: "p-" + hashlib.sha1(str(ref).encode(), usedforsecurity=False).hexdigest()[:12],
)
_env.globals.update(run_path=run_path, quote=quote)


def _static() -> dict[str, bytes]:
    files = resources.files("app.web") / "static"
    return {f.name: f.read_bytes() for f in files.iterdir() if f.name.endswith(tuple(STATIC_TYPES))}


class ServerTiming:
    """ASGI middleware: Mission Control's answers carry ``Server-Timing: app;dur=<ms>`` and the security
    headers (the webhook and metrics endpoints are left as they are)."""

    PREFIXES = ("/runs", "/login", "/logout")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.append((b"server-timing", f"app;dur={ms:.1f}".encode()))
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, timed)


@dataclass
class MissionControl:
    settings: Settings
    store: ArtifactStore
    reads: CachedReads
    catalog: RunCatalog
    access: Access
    sessions: SessionStore
    signals: IntakeActivities | None
    static: dict[str, bytes]
    transcripts: LRU[tuple[str, str], tuple[list[bytes], Conversation]]

    # --- rendering ------------------------------------------------------------------------------------
    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        user = self.sessions.user(request)
        html = _env.get_template(name).render(
            user=user,
            request_path=request.url.path,
            now=datetime.now(UTC),
            age=_age,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if user is not None:
            self.sessions.refresh(request, response, user)  # a session in use does not go idle
        return response

    def sign_in(self, request: Request) -> HTMLResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.page(
            request,
            "signin.html",
            401,
            next_url="/login?" + urlencode({"next": safe_next(target)}),
            configured=self.sessions.configured,
        )

    def error(self, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return self.page(request, "error.html", status, title=title, message=message)

    def not_found(self, request: Request) -> HTMLResponse:
        return self.error(
            request,
            404,
            "Not found",
            "There is no such run here, or you don't have access to its repository.",
        )

    # --- lookups ----------------------------------------------------------------------------------
    async def visible_run(self, user: User, repo_id: int, issue: str) -> tuple[RunSnapshot, str] | None:
        """The run (``issue`` is ``7`` or ``7.2``: the issue and which labeling) and the person's
        permission on its repository, if they may read it."""
        number, _, labeling = issue.partition(".")
        snap = await self.catalog.get(run_workflow_id(repo_id, int(number), int(labeling or 1)))
        if snap is None:
            return None
        level = await self.access.permission(user.login, snap.state.repo)
        return (snap, level) if can_read(level) else None

    async def conversation(
        self, snap: RunSnapshot, rec: TaskRecord, n: int
    ) -> tuple[list[ArtifactInfo], tuple[list[bytes], Conversation] | None]:
        """The attempt's artifacts and its transcript (lines and parsed), parsed once per version."""
        infos = await asyncio.to_thread(views.attempt_infos, self.reads, snap, rec, n)
        key = attempt_prefix(snap.run_id, rec.task.id, n) + "/transcript.jsonl"
        info = next((i for i in infos if i.key == key), None)
        if info is None:
            return infos, None
        cached = self.transcripts.get((key, info.version))
        if cached is None:
            cached = await asyncio.to_thread(views.load_conversation, self.reads, info)
            if cached is not None:
                self.transcripts.put((key, info.version), cached)
        return infos, cached

    async def attempt(
        self, snap: RunSnapshot, task_id: str, n: int, show_all: bool
    ) -> views.AttemptView | None:
        try:
            rec = snap.state.record(task_id)
        except KeyError:
            return None
        if not 1 <= n <= rec.attempts:
            return None
        infos, loaded = await self.conversation(snap, rec, n)
        return await asyncio.to_thread(
            views.attempt_view, self.reads, snap, rec, n, infos, loaded[1] if loaded else None, show_all
        )


async def _form(request: Request) -> dict[str, str] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


class RunRefConvertor(Convertor[str]):
    """``{issue:run}`` in a path: ``7`` (the issue's first run) or ``7.2`` (its second labeling's)."""

    regex = RUN_REF

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("run", RunRefConvertor())


def create_router(mc: MissionControl) -> APIRouter:
    router = APIRouter()

    @router.get("/runs/static/{name}")
    async def static(name: str) -> Response:
        data = mc.static.get(name)
        if data is None:
            return PlainTextResponse("not found", status_code=404)
        kind = STATIC_TYPES["." + name.rsplit(".", 1)[-1]]
        return Response(data, media_type=kind, headers={"Cache-Control": "public, max-age=300"})

    # --- sign-in ---------------------------------------------------------------------------------
    @router.get("/login")
    async def login(request: Request, next: str = "/runs") -> Response:
        if not mc.sessions.configured:
            return mc.error(
                request,
                503,
                "Sign-in is not configured",
                "Set OTTO_GITHUB_CLIENT_ID and OTTO_GITHUB_CLIENT_SECRET (the App's OAuth credentials).",
            )
        url, cookie = mc.sessions.authorize_redirect(request, next)
        response = RedirectResponse(url, status_code=302)
        mc.sessions.set_oauth_cookie(request, response, cookie)
        return response

    @router.get("/login/callback")
    async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
        try:
            if error:
                raise SignInError("GitHub did not authorise the sign-in.")
            target = mc.sessions.check_state(request, state)
            if not code:
                raise SignInError("GitHub sent no code back; please sign in again.")
            login_name, uid = await mc.sessions.exchange(request, code)
        except SignInError as e:
            return mc.error(request, 400, "Sign-in failed", str(e))
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie("otto_oauth", path="/login")
        mc.sessions.start(request, response, login_name, uid)
        log.info("%s signed in to Mission Control", login_name)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        user = mc.sessions.user(request)
        form = await _form(request)
        if user is None or form is None or not mc.sessions.csrf_ok(request, user, form.get("csrf")):
            return mc.error(
                request, 403, "Not signed out", "The form was stale; reload the page and try again."
            )
        response = RedirectResponse("/runs", status_code=303)
        mc.sessions.end(response, user)
        log.info("%s signed out of Mission Control", user.login)
        return response

    # --- pages -------------------------------------------------------------------------------------
    @router.get("/runs")
    async def runs(request: Request, repo: str = "", state: str = "", page: str = "1") -> Response:
        user = mc.sessions.user(request)
        if user is None:
            return mc.sign_in(request)
        if not page.isdigit():
            return mc.error(request, 400, "Bad page number", "The page number must be a whole number.")
        snaps = await mc.catalog.runs()
        readable = await mc.access.readable(user.login, (s.state.repo for s in snaps))
        try:
            listing = views.runs_page(snaps, readable, repo.strip(), state.strip(), int(page[:6]))
        except views.BadFilter as e:
            return mc.error(request, 400, "Bad filter", str(e))

        def page_url(n: int) -> str:
            params = {k: v for k, v in (("repo", listing.repo), ("state", listing.state)) if v}
            return "/runs?" + urlencode({**params, "page": n})

        return mc.page(request, "runs.html", listing=listing, states=views.STATE_FILTERS, page_url=page_url)

    @router.get("/runs/{repo_id:int}/{issue:run}")
    async def run_page(request: Request, repo_id: int, issue: str, sent: str = "") -> Response:
        user = mc.sessions.user(request)
        if user is None:
            return mc.sign_in(request)
        found = await mc.visible_run(user, repo_id, issue)
        if found is None:
            return mc.not_found(request)
        snap, level = found
        view = await asyncio.to_thread(views.run_view, mc.reads, snap, datetime.now(UTC))
        return mc.page(
            request, "run.html", v=view, writer=can_write(level), permission=level, notice=SENT.get(sent, "")
        )

    @router.get("/runs/{repo_id:int}/{issue:run}/live")
    async def run_live(request: Request, repo_id: int, issue: str, since: str = "") -> Response:
        user = mc.sessions.user(request)
        if user is None:
            return PlainTextResponse("sign in", status_code=401)
        found = await mc.visible_run(user, repo_id, issue)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        snap, level = found
        if since == str(snap.seq):
            return Response(status_code=204)
        view = await asyncio.to_thread(views.run_view, mc.reads, snap, datetime.now(UTC))
        return mc.page(request, "run_live.html", v=view, writer=can_write(level), permission=level, notice="")

    async def attempt_or_404(
        request: Request, repo_id: int, issue: str, task_id: str, n: int, show_all: bool
    ) -> tuple[views.AttemptView, str] | Response:
        user = mc.sessions.user(request)
        if user is None:
            return mc.sign_in(request)
        found = await mc.visible_run(user, repo_id, issue)
        if found is None:
            return mc.not_found(request)
        view = await mc.attempt(found[0], task_id, n, show_all)
        if view is None:
            return mc.not_found(request)
        return view, found[1]

    @router.get("/runs/{repo_id:int}/{issue:run}/tasks/{task_id}/attempts/{n:int}")
    async def attempt_page(
        request: Request, repo_id: int, issue: str, task_id: str, n: int, all: str = ""
    ) -> Response:
        got = await attempt_or_404(request, repo_id, issue, task_id, n, all == "1")
        if isinstance(got, Response):
            return got
        return mc.page(request, "attempt.html", a=got[0])

    @router.get("/runs/{repo_id:int}/{issue:run}/tasks/{task_id}/attempts/{n:int}/live")
    async def attempt_live(
        request: Request, repo_id: int, issue: str, task_id: str, n: int, since: str = "", all: str = ""
    ) -> Response:
        if mc.sessions.user(request) is None:
            return PlainTextResponse("sign in", status_code=401)
        got = await attempt_or_404(request, repo_id, issue, task_id, n, all == "1")
        if isinstance(got, Response):
            return PlainTextResponse("not found", status_code=404)
        if since == got[0].version:
            return Response(status_code=204)
        return mc.page(request, "attempt_live.html", a=got[0])

    @router.get("/runs/{repo_id:int}/{issue:run}/tasks/{task_id}/attempts/{n:int}/transcript/{ref}")
    async def transcript_piece(
        request: Request, repo_id: int, issue: str, task_id: str, n: int, ref: str
    ) -> Response:
        user = mc.sessions.user(request)
        if user is None:
            return PlainTextResponse("sign in", status_code=401)
        found = await mc.visible_run(user, repo_id, issue)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        snap = found[0]
        try:
            rec = snap.state.record(task_id)
        except KeyError:
            return PlainTextResponse("not found", status_code=404)
        if not 1 <= n <= rec.attempts:
            return PlainTextResponse("not found", status_code=404)
        _infos, loaded = await mc.conversation(snap, rec, n)
        text = piece(loaded[0], ref) if loaded is not None else None
        if text is None:
            return PlainTextResponse("not found", status_code=404)
        return PlainTextResponse(text)

    @router.get("/runs/{repo_id:int}/{issue:run}/artifacts/{path:path}")
    async def artifact(request: Request, repo_id: int, issue: str, path: str) -> Response:
        user = mc.sessions.user(request)
        if user is None:
            return mc.sign_in(request)
        found = await mc.visible_run(user, repo_id, issue)
        if found is None:
            return mc.not_found(request)
        try:
            key = check_key(f"{run_key(found[0].run_id)}/{path}")
        except ArtifactKeyError:
            return mc.not_found(request)
        data = await asyncio.to_thread(mc.store.get, key)
        if data is None:
            return mc.not_found(request)
        return Response(
            data, media_type="text/plain; charset=utf-8", headers={"Content-Disposition": "inline"}
        )

    # --- actions -------------------------------------------------------------------------------------
    async def authorise(
        request: Request, repo_id: int, issue: str, what: str
    ) -> tuple[User, RunSnapshot, dict[str, str]] | Response:
        user = mc.sessions.user(request)
        if user is None:
            return mc.sign_in(request)
        form = await _form(request)
        if form is None:
            return mc.error(request, 413, "Too much", "That form was too large; nothing was sent.")
        if not mc.sessions.csrf_ok(request, user, form.get("csrf")):
            return mc.error(
                request, 403, "Not sent", "The form was stale or not from this site; nothing was sent."
            )
        found = await mc.visible_run(user, repo_id, issue)
        if found is None:
            return mc.not_found(request)
        snap = found[0]
        if not can_write(await mc.access.permission(user.login, snap.state.repo, fresh=True)):
            return mc.error(
                request,
                403,
                "Not allowed",
                f"Only people with write access to {snap.repo_full_name} can {what}. Nothing was sent.",
            )
        return user, snap, form

    async def deliver(request: Request, snap: RunSnapshot, signal: str, payload: dict[str, Any]) -> Response:
        if mc.signals is None:
            return mc.error(request, 503, "Not connected", "This web process has no Temporal connection.")
        outcome = await mc.signals.signal_run(SignalInput(run_id=snap.run_id, signal=signal, payload=payload))
        if not outcome.delivered:
            return mc.error(
                request, 409, "Run is over", "There is no active run for this issue; nothing was sent."
            )
        if outcome.rejected is not None:
            return mc.error(request, 409, "Not now", f"{outcome.rejected} Nothing was sent.")
        return RedirectResponse(f"{run_path(snap.run_id)}?sent={signal}", status_code=303)

    @router.post("/runs/{repo_id:int}/{issue:run}/stop")
    async def stop(request: Request, repo_id: int, issue: str) -> Response:
        got = await authorise(request, repo_id, issue, "stop this run")
        if isinstance(got, Response):
            return got
        user, snap, _form_data = got
        log.info("%s asked Mission Control to stop %s", user.login, snap.run_id)
        return await deliver(request, snap, "stop", StopRequest(sender=user.login).model_dump(mode="json"))

    @router.post("/runs/{repo_id:int}/{issue:run}/tasks/{task_id}/retry")
    async def retry(request: Request, repo_id: int, issue: str, task_id: str) -> Response:
        got = await authorise(request, repo_id, issue, "retry its tasks")
        if isinstance(got, Response):
            return got
        user, snap, form = got
        try:
            rec = snap.state.record(task_id)
        except KeyError:
            return mc.not_found(request)
        if rec.status in (TaskStatus.RUNNING, TaskStatus.PENDING):
            return mc.error(
                request, 409, "Not now", f"Task {rec.task.id} is {rec.status.value}; nothing was sent."
            )
        guidance = form.get("guidance", "").strip()
        if len(guidance) > GUIDANCE_CHARS:
            return mc.error(
                request,
                400,
                "Too long",
                f"Guidance is limited to {GUIDANCE_CHARS} characters; nothing was sent.",
            )
        request_ = RetryRequest(
            task_id=rec.task.id,
            guidance=guidance,
            sender=user.login,
            pr_number=rec.pr_number,
            repo_id=(rec.repo or snap.state.repo).repo_id,
        )
        log.info("%s asked Mission Control to retry %s of %s", user.login, rec.task.id, snap.run_id)
        return await deliver(request, snap, "retry", request_.model_dump(mode="json"))

    return router


def mission_control(settings: Settings, client: Client | None, store: ArtifactStore) -> APIRouter:
    github = GitHubApp(settings) if settings.has_github_credentials else None
    mc = MissionControl(
        settings=settings,
        store=store,
        reads=CachedReads(store),
        catalog=RunCatalog(store, settings.ui_catalog_refresh_s),
        access=Access(github, settings.ui_permission_ttl_s),
        sessions=SessionStore(settings, store),
        signals=IntakeActivities(client, settings) if client is not None else None,
        static=_static(),
        transcripts=LRU(16),
    )
    return create_router(mc)
