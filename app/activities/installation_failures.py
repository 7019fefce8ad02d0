"""An installation GitHub won't serve, said once and never retried.

When GitHub refuses the App a token for an installation (404: not installed there, or no longer; 403: the
installation is suspended), every activity that needs it fails the same way however often it is retried.
This worker interceptor turns :class:`~app.github_auth.InstallationUnavailable` from any activity into a
non-retryable ``ApplicationError`` of kind ``UnknownInstallation`` / ``InstallationSuspended`` (category
BENIGN, so Temporal itself logs it at debug level only) and logs one line naming the installation and the
account. A delivery for such an installation then costs one token request, not six over half a minute.

An installation token GitHub refuses (401: revoked, e.g. the App was just uninstalled) is dropped from the
cache, so that the activity's retry asks GitHub for a new one — and learns whether the installation is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from githubkit.exception import RequestFailed
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from app.contracts.failures import FailureKind
from app.domain.run import RepoRef
from app.github_auth import GitHubApp, InstallationUnavailable

log = logging.getLogger("otto.installation")


def account_of(args: Sequence[Any]) -> str:
    """The account an activity's input is about: its repository's owner, or an ``account`` field."""
    for arg in args:
        nested = (getattr(arg, name, None) for name in ("state", "model_input"))
        for candidate in (arg, getattr(arg, "repo", None), *(getattr(n, "repo", None) for n in nested)):
            if isinstance(candidate, RepoRef):
                return candidate.owner
        account = getattr(arg, "account", None)
        if isinstance(account, str) and account:
            return account
    return "?"


def as_failure(e: InstallationUnavailable, account: str) -> ApplicationError:
    if e.suspended:
        message = (
            f"The Otto App's installation on {account} is suspended (installation {e.installation_id}), "
            "so Otto can't act there until it is unsuspended."
        )
        kind = FailureKind.INSTALLATION_SUSPENDED
    else:
        message = (
            f"The Otto App is not installed on {account} (installation {e.installation_id} is unknown to "
            "GitHub), so Otto can't act there."
        )
        kind = FailureKind.UNKNOWN_INSTALLATION
    return ApplicationError(message, type=kind, non_retryable=True, category=ApplicationErrorCategory.BENIGN)


def _installation_token(e: RequestFailed) -> str | None:
    scheme, _, value = e.request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "token" and value.strip() else None


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, app: GitHubApp | None) -> None:
        super().__init__(next)
        self.app = app

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except InstallationUnavailable as e:
            account = account_of(input.args)
            name = activity.info().activity_type
            if e.suspended:
                log.warning(
                    "installation %d (account %s) is suspended: GitHub refuses the App there; %s is not "
                    "retried",
                    e.installation_id,
                    account,
                    name,
                )
            else:
                log.warning(
                    "installation %d (account %s) is unknown to GitHub: the App is not installed there "
                    "(any more); %s is not retried",
                    e.installation_id,
                    account,
                    name,
                )
            raise as_failure(e, account) from e
        except RequestFailed as e:
            token = _installation_token(e) if e.response.status_code == 401 else None
            if token is not None and self.app is not None and self.app.forget_token(token):
                log.info("GitHub refused a cached installation token (401): the retry asks for a new one")
            raise


class InstallationFailures(Interceptor):
    """See the module docstring; ``app`` (the worker's GitHub App) lets refused tokens be forgotten."""

    def __init__(self, app: GitHubApp | None = None) -> None:
        self.app = app

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self.app)
