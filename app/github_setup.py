"""``otto setup``: register Otto's GitHub App from its manifest (``app.yml``), the way Probot does.

A small page on 127.0.0.1 holds a form that POSTs the manifest (as GitHub's JSON) to
``<github>/settings/apps/new?state=<random>`` (or ``/organizations/<org>/settings/apps/new``). GitHub creates
the App and sends the browser back to ``http://127.0.0.1:<port>/callback?code=...&state=...``; the state is
checked (once, in constant time), the code exchanged at ``POST <api>/app-manifests/{code}/conversions`` and
the credentials written: the private key to a 0600 file, the rest merged into ``.env`` (0600). Nothing
secret is printed or shown on the page.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx
import yaml
from dotenv.parser import parse_stream
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from app.serve_thread import RunningServer, serve_in_thread

DOTCOM_WEB = "https://github.com"
DOTCOM_API = "https://api.github.com"
MANIFEST_KEYS = (
    "name",
    "url",
    "description",
    "hook_attributes",
    "redirect_url",
    "callback_urls",
    "setup_url",
    "public",
    "default_events",
    "default_permissions",
    "request_oauth_on_install",
    "setup_on_update",
)
ALWAYS_DELIVERED = {"installation", "installation_repositories"}  # not subscribable: every App gets them
REMOVED_KEYS = ("OTTO_GITHUB_PRIVATE_KEY",)  # an inline key would win over the new key file


class SetupError(RuntimeError):
    """Bad options or manifest, or GitHub refused: a message for the operator (never holds a secret)."""


@dataclass(frozen=True)
class GitHubHost:
    """Where the App is registered: github.com or a GitHub Enterprise Server (``https://host``)."""

    web_url: str
    api_url: str

    @classmethod
    def from_url(cls, url: str | None) -> GitHubHost:
        if not url:
            return cls(DOTCOM_WEB, DOTCOM_API)
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise SetupError(f"--github-url must be like https://github.example.com, not {url!r}")
        web = f"{parts.scheme}://{parts.netloc}{parts.path}"
        if parts.netloc.lower() in ("github.com", "www.github.com"):
            return cls(DOTCOM_WEB, DOTCOM_API)
        return cls(web, f"{web}/api/v3")

    def new_app_url(self, state: str, org: str | None = None) -> str:
        where = f"/organizations/{quote(org, safe='')}" if org else ""
        return f"{self.web_url}{where}/settings/apps/new?state={quote(state, safe='')}"


@dataclass(frozen=True)
class AppCredentials:
    id: int
    slug: str
    name: str
    html_url: str
    client_id: str
    client_secret: str
    webhook_secret: str
    pem: str

    @property
    def install_url(self) -> str:
        return f"{self.html_url}/installations/new"


@dataclass(frozen=True)
class SetupResult:
    app: AppCredentials
    env_file: Path
    key_file: Path


def _http_url(value: str, option: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SetupError(f"{option} must be an http(s) URL, not {value!r}")
    return value


def build_manifest(
    app_yml: str, webhook_url: str, redirect_url: str, name: str | None = None
) -> dict[str, Any]:
    """``app.yml`` (Probot's format) as the JSON manifest GitHub takes, with the webhook and redirect URLs."""
    try:
        loaded = yaml.safe_load(app_yml)
    except yaml.YAMLError as exc:
        raise SetupError(f"the manifest is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise SetupError("the manifest must be a YAML mapping")
    unknown = sorted(set(loaded) - set(MANIFEST_KEYS))
    if unknown:
        raise SetupError(f"unknown manifest keys: {', '.join(unknown)}")
    manifest = {key: loaded[key] for key in MANIFEST_KEYS if key in loaded}
    hook = dict(manifest.get("hook_attributes") or {})
    manifest["hook_attributes"] = hook | {"url": _http_url(webhook_url, "--webhook-url")}
    manifest["redirect_url"] = redirect_url
    if name:
        manifest["name"] = name
    if not manifest.get("name") or not manifest.get("url"):
        raise SetupError("the manifest needs a name and a url")
    events = manifest.get("default_events") or []
    manifest["default_events"] = [e for e in events if e not in ALWAYS_DELIVERED]
    return manifest


def form_page(action: str, manifest: dict[str, Any], host: GitHubHost) -> str:
    value = escape(json.dumps(manifest), quote=True)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Register Otto</title></head><body>"
        f"<h1>Register Otto's GitHub App on {escape(host.web_url)}</h1>"
        f"<form action='{escape(action, quote=True)}' method='post'>"
        f"<input type='hidden' name='manifest' value='{value}'>"
        "<button type='submit'>Create the GitHub App</button></form></body></html>"
    )


def exchange_code(api_url: str, code: str, timeout: float = 30.0) -> AppCredentials:
    """``POST /app-manifests/{code}/conversions`` (no authentication: the code is the credential)."""
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    try:
        resp = httpx.post(
            url,
            headers={"Accept": "application/vnd.github+json", "User-Agent": "otto-setup"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise SetupError(f"could not reach {api_url}: {type(exc).__name__}") from exc
    if resp.status_code != 201:
        message = ""
        try:
            body = resp.json()
            message = str(body.get("message", "")) if isinstance(body, dict) else ""
        except ValueError:
            pass
        raise SetupError(f"GitHub refused the code ({resp.status_code} {message})".rstrip())
    data = resp.json()
    try:
        return AppCredentials(
            id=int(data["id"]),
            slug=str(data["slug"]),
            name=str(data["name"]),
            html_url=str(data["html_url"]).rstrip("/"),
            client_id=str(data["client_id"]),
            client_secret=str(data["client_secret"]),
            webhook_secret=str(data.get("webhook_secret") or ""),
            pem=str(data["pem"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SetupError("GitHub's answer to the code exchange lacks App fields") from exc


def _quote_env(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise SetupError("a .env value cannot span lines")
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def merge_env(existing: str, updates: dict[str, str], remove: tuple[str, ...] = ()) -> str:
    """``existing`` .env text with ``updates`` set (in place where present, else appended) and ``remove``
    dropped; comments, other keys and multi-line values are kept as written."""
    out: list[str] = []
    done: set[str] = set()
    for binding in parse_stream(io.StringIO(existing)):
        key = binding.key
        if key in remove:
            continue
        if key in updates:
            if key not in done:
                out.append(f"{key}={_quote_env(updates[key])}\n")
                done.add(key)
            continue
        text = binding.original.string
        out.append(text if text.endswith("\n") else text + "\n")
    missing = [k for k in updates if k not in done]
    if missing and out and out[-1].strip():
        out.append("\n")
    out += [f"{key}={_quote_env(updates[key])}\n" for key in missing]
    return "".join(out)


def _write_private(path: Path, text: str, exclusive: bool) -> None:
    """Write a file only its owner can read (0600), atomically (or refusing to overwrite: ``exclusive``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_credentials(app: AppCredentials, host: GitHubHost, env_file: Path, key_file: Path | None) -> Path:
    """The key to ``key_file`` (default: next to the .env under .otto/), the rest merged into ``env_file``."""
    key_path = (key_file or env_file.parent / ".otto" / f"github-app-{app.id}.private-key.pem").resolve()
    try:
        _write_private(key_path, app.pem, exclusive=True)
    except FileExistsError as exc:
        raise SetupError(f"{key_path} exists; pass another --key-file") from exc
    updates = {
        "OTTO_GITHUB_APP_ID": str(app.id),
        "OTTO_GITHUB_APP_SLUG": app.slug,
        "OTTO_GITHUB_PRIVATE_KEY_PATH": str(key_path),
        "OTTO_WEBHOOK_SECRET": app.webhook_secret,
        "OTTO_GITHUB_CLIENT_ID": app.client_id,
        "OTTO_GITHUB_CLIENT_SECRET": app.client_secret,
        "OTTO_GITHUB_API_URL": host.api_url,
    }
    existing = env_file.read_text() if env_file.exists() else ""
    _write_private(env_file, merge_env(existing, updates, REMOVED_KEYS), exclusive=False)
    return key_path


class ManifestSetup:
    """The local registration page and its callback; ``start()``, then ``wait()`` for the outcome."""

    def __init__(
        self,
        manifest_yml: str,
        webhook_url: str,
        host: GitHubHost,
        env_file: Path,
        key_file: Path | None = None,
        org: str | None = None,
        name: str | None = None,
        port: int = 0,
    ) -> None:
        self.host, self.org, self.env_file, self.key_file = host, org, env_file, key_file
        self.manifest_yml, self.webhook_url, self.name, self.port = manifest_yml, webhook_url, name, port
        self._state: str | None = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.result: SetupResult | None = None
        self.error: str | None = None
        self.server: RunningServer | None = None
        self.manifest: dict[str, Any] = {}
        build_manifest(manifest_yml, webhook_url, "http://127.0.0.1/callback", name)  # fail before serving

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/"

    def start(self) -> str:
        app = Starlette(
            routes=[Route("/", self._index), Route("/callback", self._callback)],
            middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])],
        )
        self.server = serve_in_thread(app, host="127.0.0.1", port=self.port, name="otto-setup")
        redirect = f"{self.server.url}/callback"
        self.manifest = build_manifest(self.manifest_yml, self.webhook_url, redirect, self.name)
        return self.url

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def _take_state(self, offered: str) -> bool:
        """True once for the right state (compared in constant time); never again afterwards."""
        with self._lock:
            expected = self._state
            if expected is None or not secrets.compare_digest(offered.encode(), expected.encode()):
                return False
            self._state = None
            return True

    async def _index(self, request: Request) -> HTMLResponse:
        with self._lock:
            state = self._state
        if state is None:
            return HTMLResponse(
                "<p>This registration is finished; run <code>otto setup</code> again.</p>", 410
            )
        action = self.host.new_app_url(state, self.org)
        return HTMLResponse(form_page(action, self.manifest, self.host))

    async def _callback(self, request: Request) -> HTMLResponse:
        code = request.query_params.get("code", "")
        if not code or not self._take_state(request.query_params.get("state", "")):
            return HTMLResponse("<p>Unknown or used state: nothing was changed.</p>", 400)
        try:
            app = await anyio.to_thread.run_sync(exchange_code, self.host.api_url, code)
            key_path = await anyio.to_thread.run_sync(
                write_credentials, app, self.host, self.env_file, self.key_file
            )
        except SetupError as exc:
            self.error = str(exc)
            self._done.set()
            return HTMLResponse(f"<p>Registration failed: {escape(str(exc))}</p>", 502)
        self.result = SetupResult(app, self.env_file, key_path)
        self._done.set()
        link = escape(app.install_url, quote=True)
        return HTMLResponse(
            f"<p>Registered <b>{escape(app.name)}</b>. Credentials are in {escape(str(self.env_file))}.</p>"
            f"<p><a href='{link}'>Install it on your repositories</a></p>"
        )
