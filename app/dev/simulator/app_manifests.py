"""GitHub App registration from a manifest, like github.com's flow: a signed-in user's browser POSTs the
``manifest`` form field to ``/settings/apps/new`` (or ``/organizations/{org}/settings/apps/new``); the App is
registered with a fresh key pair and the browser is redirected to the manifest's ``redirect_url`` with
``code`` (single use, valid one hour) and ``state``; ``POST /api/v3/app-manifests/{code}/conversions`` then
hands out the App's id, slug, client id and secret, webhook secret and private key (PEM)."""

from __future__ import annotations

import json
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.dev.simulator.core import SimulatorCore, SimulatorError
from app.dev.simulator.state import ManifestCode, SimApp, SimUser, now

CODE_TTL = timedelta(hours=1)  # GitHub: the code must be exchanged within an hour
MAX_MANIFEST_BYTES = 64 * 1024
PERMISSION_LEVELS = ("read", "write", "admin")
MANIFEST_KEYS = {
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
}


class ManifestError(ValueError):
    """A manifest GitHub would refuse (shown to the user on the registration page)."""


def _key_pair() -> tuple[str, str]:
    """(private PEM in GitHub's PKCS#1 form, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _http_url(value: Any, what: str) -> str:
    if (
        not isinstance(value, str)
        or urlsplit(value).scheme not in ("http", "https")
        or not urlsplit(value).netloc
    ):
        raise ManifestError(f"{what} must be an http(s) URL")
    return value


def parse_manifest(raw: str) -> dict[str, Any]:
    """The posted ``manifest`` field as GitHub checks it (a JSON object with known keys and sane values)."""
    if len(raw.encode()) > MAX_MANIFEST_BYTES:
        raise ManifestError("The manifest is too large")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ManifestError("The manifest is not valid JSON") from exc
    if not isinstance(manifest, dict):
        raise ManifestError("The manifest must be a JSON object")
    unknown = sorted(set(manifest) - MANIFEST_KEYS)
    if unknown:
        raise ManifestError(f"Unknown manifest keys: {', '.join(unknown)}")
    name = manifest.get("name")
    if not isinstance(name, str) or not slugify(name) or len(name) > 34:
        raise ManifestError("name is required (at most 34 characters)")
    _http_url(manifest.get("url"), "url")
    _http_url(manifest.get("redirect_url"), "redirect_url")
    hook = manifest.get("hook_attributes")
    if hook is not None:
        if not isinstance(hook, dict):
            raise ManifestError("hook_attributes must be an object")
        _http_url(hook.get("url"), "hook_attributes.url")
        if not isinstance(hook.get("active", True), bool):
            raise ManifestError("hook_attributes.active must be a boolean")
    permissions = manifest.get("default_permissions") or {}
    if not isinstance(permissions, dict) or any(
        not isinstance(k, str) or v not in PERMISSION_LEVELS for k, v in permissions.items()
    ):
        raise ManifestError("default_permissions must map permission names to read, write or admin")
    events = manifest.get("default_events") or []
    if not isinstance(events, list) or any(
        not isinstance(e, str) or not re.fullmatch(r"[a-z_]+", e) for e in events
    ):
        raise ManifestError("default_events must be a list of event names")
    return manifest


class ManifestOps(SimulatorCore):
    """Web sessions (who is signed in to the simulated github.com) and the manifest codes."""

    def create_web_session(self, login: str) -> str:
        """A browser session cookie (``user_session``) for a human, as if they had signed in."""
        with self.lock:
            self.user(login)
            session = secrets.token_urlsafe(24)
            self.web_sessions[session] = login
            return session

    def session_user(self, session: str | None) -> SimUser | None:
        with self.lock:
            login = self.web_sessions.get(session or "")
            return self.users.get(login.lower()) if login else None

    def register_app_from_manifest(self, owner: SimUser, manifest: dict[str, Any]) -> ManifestCode:
        """Register the App the manifest describes, owned by ``owner``; returns its one-time code."""
        private, public = _key_pair()
        with self.lock:
            name = str(manifest["name"])
            if any(a.name.lower() == name.lower() or a.slug == slugify(name) for a in self.apps.values()):
                raise ManifestError("Name is already in use")
            hook: dict[str, Any] = manifest.get("hook_attributes") or {}
            webhook_secret = secrets.token_hex(20) if hook else None
            active = bool(hook) and bool(hook.get("active", True))
            app = self.register_app(
                self.new_id(),
                slugify(name),
                public,
                webhook_url=str(hook["url"]) if active else None,
                webhook_secret=webhook_secret or "",
                name=name,
                owner=owner.login,
                permissions={"metadata": "read", **dict(manifest.get("default_permissions") or {})},
                events=list(manifest.get("default_events") or []),
            )
            code = ManifestCode(
                code=secrets.token_hex(20),
                app_id=app.id,
                pem=private,
                client_secret=secrets.token_hex(20),
                webhook_secret=webhook_secret,
                expires_at=now() + CODE_TTL,
            )
            self.manifest_codes[code.code] = code
            return code

    def convert_manifest_code(self, code: str) -> tuple[SimApp, ManifestCode]:
        """Exchange a code once: unknown or used → LookupError (404); expired → TimeoutError (422)."""
        with self.lock:
            found = self.manifest_codes.get(code)
            if found is None or found.used:
                raise LookupError(code)
            if found.expires_at <= now():
                raise TimeoutError(code)
            found.used = True
            return self.app(found.app_id), found

    def expire_manifest_codes(self) -> None:
        """Expire every manifest code issued so far (the next conversion answers 422)."""
        with self.lock:
            for code in self.manifest_codes.values():
                code.expires_at = now() - timedelta(seconds=1)

    def app_by_slug(self, slug: str) -> SimApp:
        with self.lock:
            found = next((a for a in self.apps.values() if a.slug == slug), None)
            if found is None:
                raise SimulatorError(f"unknown app {slug!r}")
            return found
