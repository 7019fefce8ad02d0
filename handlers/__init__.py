"""One module per GitHub event: parse, authorize cheaply, hand off to Temporal. Nothing slow."""

from __future__ import annotations

from app.intake import Handler
from handlers import checks, comments, installation, issues, pulls, reviews

HANDLERS: dict[str, Handler] = {
    "issues": issues.handle,
    "issue_comment": comments.handle,
    "pull_request": pulls.handle,
    "pull_request_review": reviews.handle,
    "check_suite": checks.handle,
    "check_run": checks.handle,
    "installation": installation.handle,
}
