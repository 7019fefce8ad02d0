"""What a signed-in person may see and do, as GitHub says: their permission on each repository, asked with
the App's installation token through the collaborator-permission endpoint, exactly like `/otto` commands
are authorised. Reading needs any permission but none; stop and retry need write, maintain or admin.
Answers are reused for ``OTTO_UI_PERMISSION_TTL_S``; actions always ask afresh. Failures mean no access."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from app.activities.github import RepoGitHub
from app.domain.run import WRITE_PERMISSIONS, RepoRef
from app.github_auth import GitHubApp

log = logging.getLogger("otto.web")

CONCURRENT_CHECKS = 8


def can_read(permission: str) -> bool:
    return permission not in ("", "none")


def can_write(permission: str) -> bool:
    return permission in WRITE_PERMISSIONS


class Access:
    def __init__(self, github: GitHubApp | None, ttl_s: float) -> None:
        self.github = github
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, int], tuple[str, float]] = {}
        self._gate = asyncio.Semaphore(CONCURRENT_CHECKS)

    async def permission(self, login: str, repo: RepoRef, fresh: bool = False) -> str:
        key = (login.lower(), repo.repo_id)
        if not fresh:
            hit = self._cache.get(key)
            if hit is not None and hit[1] > time.monotonic():
                return hit[0]
        if self.github is None:
            return "none"
        try:
            async with self._gate:
                client = await self.github.installation_client(repo.installation_id)
                level = await RepoGitHub(client, repo).permission(login)
        except Exception:
            log.warning(
                "could not ask GitHub for %s's permission on %s", login, repo.full_name, exc_info=True
            )
            return "none"  # fail closed, and don't remember it
        self._cache[key] = (level, time.monotonic() + self.ttl_s)
        return level

    async def readable(self, login: str, repos: Iterable[RepoRef]) -> set[int]:
        """The ids of those repositories ``login`` may read."""
        unique = {r.repo_id: r for r in repos}
        levels = await asyncio.gather(*(self.permission(login, r) for r in unique.values()))
        return {rid for rid, level in zip(unique, levels, strict=True) if can_read(level)}
