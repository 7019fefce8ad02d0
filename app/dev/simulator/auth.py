"""Who is calling: App JWTs (RS256, checked like GitHub), installation tokens and personal tokens."""

from __future__ import annotations

import base64
import functools
import secrets
import string
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from app.dev.simulator.errors import ApiError
from app.dev.simulator.state import SimApp, SimInstallation, SimUser

MAX_JWT_LIFETIME = 600
CLOCK_SLACK = 60
TOKEN_ALPHABET = string.ascii_letters + string.digits


def new_token(prefix: str) -> str:
    return prefix + "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(36))


@dataclass(frozen=True)
class Actor:
    """The authenticated caller of one request."""

    kind: str  # "app" | "installation" | "user"
    user: SimUser | None  # the acting user: the App's bot for installation tokens, the human for PATs
    app: SimApp | None = None
    installation: SimInstallation | None = None

    @property
    def label(self) -> str:
        if self.kind == "app" and self.app is not None:
            return f"app:{self.app.id}"
        if self.kind == "installation" and self.installation is not None:
            return f"installation:{self.installation.id}"
        if self.user is not None:
            return f"user:{self.user.login}"
        return "anonymous"


def split_authorization(header: str | None) -> tuple[str, str] | None:
    """``Authorization`` → (scheme lowercased, credentials); None when absent."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return scheme.lower(), value.strip()


def basic_password(header: str | None) -> str | None:
    parts = split_authorization(header)
    if parts is None or parts[0] != "basic":
        return None
    try:
        decoded = base64.b64decode(parts[1], validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    _user, _, password = decoded.partition(":")
    return password or None


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2


@functools.lru_cache(maxsize=64)
def _verifying_key(public_key_pem: str) -> RSAPublicKey:
    """An App's public key, parsed once (GitHub's Apps sign with RS256)."""
    key = serialization.load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, RSAPublicKey):
        raise ApiError(401, "A JSON web token could not be decoded")
    return key


def verify_app_jwt(token: str, apps: dict[int, SimApp]) -> SimApp:
    """Verify an App JWT like GitHub: RS256 with the App's key, ``iss`` = App id (or client id), not
    expired, ``iat`` not in the future and at most 10 minutes between ``iat`` and ``exp``."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ApiError(401, "A JSON web token could not be decoded") from exc
    issuer = str(claims.get("iss", ""))
    app = next((a for a in apps.values() if issuer in (str(a.id), a.client_id)), None)
    if app is None:
        raise ApiError(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(
            token,
            _verifying_key(app.public_key_pem),
            algorithms=["RS256"],
            options={"require": ["exp", "iat", "iss"]},
            leeway=0,
        )
    except jwt.ExpiredSignatureError as exc:
        raise ApiError(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
            "which the assertion expires",
        ) from exc
    except jwt.PyJWTError as exc:
        raise ApiError(401, "A JSON web token could not be decoded") from exc
    issued, expires = int(claims["iat"]), int(claims["exp"])
    if expires - issued > MAX_JWT_LIFETIME + CLOCK_SLACK // 2:
        raise ApiError(
            401,
            "'Expiration time' claim ('exp') is too far in the future",
        )
    if issued > time.time() + CLOCK_SLACK:
        raise ApiError(
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued",
        )
    return app
