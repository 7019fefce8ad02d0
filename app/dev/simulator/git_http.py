"""Git smart HTTP (``/{owner}/{repo}.git/...``) through ``git http-backend``, with GitHub's Basic auth."""

from __future__ import annotations

import gzip
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.dev.simulator import gitrepo
from app.dev.simulator.auth import Actor, basic_password
from app.dev.simulator.errors import ApiError
from app.dev.simulator.gitrepo import git_env
from app.dev.simulator.http_util import ACTOR_SCOPE_KEY, sim_of
from app.dev.simulator.state import PERMISSION_ORDER, PushRecord

router = APIRouter()
SERVICES = {"git-upload-pack", "git-receive-pack"}


@dataclass
class CgiResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def unauthorized() -> Response:
    return Response(
        "Invalid username or token. Password authentication is not supported for Git operations.\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
        media_type="text/plain",
    )


def run_backend(env: dict[str, str], body: bytes) -> CgiResult:
    proc = subprocess.run(
        ["git", "http-backend"], input=body, capture_output=True, env=env, check=False, timeout=300
    )
    out = proc.stdout
    split = out.find(b"\r\n\r\n")
    sep_len = 4
    if split < 0 or (0 <= out.find(b"\n\n") < split):
        split, sep_len = out.find(b"\n\n"), 2
    if split < 0:
        return CgiResult(500, [("Content-Type", "text/plain")], proc.stderr or b"git http-backend failed")
    status, headers = 200, []
    for line in out[:split].decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key:
            headers.append((key.strip(), value.strip()))
    return CgiResult(status, headers, out[split + sep_len :])


def may_use(sim_actor: Actor, level: str, sim_permission: str | None) -> bool:
    if sim_actor.kind == "installation":
        return True
    return sim_permission is not None and PERMISSION_ORDER.index(sim_permission) >= PERMISSION_ORDER.index(
        level
    )


@router.api_route("/{owner}/{repo_git}/{rest:path}", methods=["GET", "POST"])
async def git_http(request: Request, owner: str, repo_git: str, rest: str) -> Response:
    sim = sim_of(request)
    if not repo_git.endswith(".git"):
        return JSONResponse(
            {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404
        )
    name = repo_git[: -len(".git")]
    service = request.query_params.get("service") if rest == "info/refs" else rest
    if service not in SERVICES:
        return Response("Not Found\n", status_code=404, media_type="text/plain")
    password = basic_password(request.headers.get("authorization"))
    actor = sim.actor_for_secret(password) if password else None
    if actor is None:
        return unauthorized()
    request.scope[ACTOR_SCOPE_KEY] = actor
    try:
        r = sim.access_repo(actor, owner, name)
    except ApiError:
        return Response("Repository not found.\n", status_code=404, media_type="text/plain")
    pushing = service == "git-receive-pack"
    permission = sim.permission_of(r, actor.user.login) if actor.kind == "user" and actor.user else None
    if not may_use(actor, "write" if pushing else "read", permission):
        return Response("Permission denied.\n", status_code=403, media_type="text/plain")

    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
        body = gzip.decompress(body)
    assert actor.user is not None
    env = git_env() | {
        "GIT_PROJECT_ROOT": str(sim.root_dir),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{r.owner.login}/{r.name}.git/{rest}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": actor.user.login,
        "REMOTE_ADDR": request.client.host if request.client else "127.0.0.1",
        "GIT_HTTP_MAX_REQUEST_BUFFER": str(100 * 1024 * 1024),
    }
    if request.headers.get("git-protocol"):
        env["GIT_PROTOCOL"] = request.headers["git-protocol"]
    if pushing and request.method == "POST":
        result, updates = await anyio.to_thread.run_sync(receive_pack, r.path, env, body)
        if updates:
            sim.record_push(PushRecord(r.owner.login, r.name, actor.label, updates))
            await anyio.to_thread.run_sync(sim.on_refs_changed, r, updates, actor.user)
    else:
        result = await anyio.to_thread.run_sync(run_backend, env, body)
    return Response(result.body, status_code=result.status, headers=dict(result.headers))


RefUpdate = tuple[str, str | None, str | None]  # (ref, old sha, new sha); None = absent
_PUSH_LOCKS: dict[Path, threading.Lock] = {}
_PUSH_LOCKS_GUARD = threading.Lock()


def receive_pack(repo: Path, env: dict[str, str], body: bytes) -> tuple[CgiResult, list[RefUpdate]]:
    """One push, and the refs it changed. Pushes to one repository are taken one at a time: with two at
    once, each would see the other's ref updates as its own (as on GitHub, each push is its own event)."""
    with _PUSH_LOCKS_GUARD:
        lock = _PUSH_LOCKS.setdefault(repo, threading.Lock())
    with lock:
        before = gitrepo.list_refs(repo)
        result = run_backend(env, body)
        after = gitrepo.list_refs(repo)
    updates = [
        (ref, before.get(ref), after.get(ref))
        for ref in sorted(set(before) | set(after))
        if before.get(ref) != after.get(ref)
    ]
    return result, updates
