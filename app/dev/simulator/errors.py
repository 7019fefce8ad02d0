"""GitHub-style API errors: ``{"message": ..., "documentation_url": ...}`` (plus ``errors`` for 422)."""

from __future__ import annotations

from typing import Any

DOCS_URL = "https://docs.github.com/rest"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        errors: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        out["documentation_url"] = DOCS_URL
        out["status"] = str(self.status)
        return out


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def validation_failed(errors: list[dict[str, Any]], message: str = "Validation Failed") -> ApiError:
    return ApiError(422, message, errors=errors)
