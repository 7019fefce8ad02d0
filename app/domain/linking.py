"""Which of the repositories a run's settings name (``repositories:``) the run may use, and how: the App's
installation must reach each, and the person who labeled the issue must be allowed there what the run
would do (write for ``access: write``, read for ``read``). Otherwise it is left out, or used read-only,
and the status says which and why. Permissions come from GitHub, never from the settings' text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from app.domain.repo_config import RepoConfig
from app.domain.run import WRITE_PERMISSIONS, LinkedRepoState

READ_PERMISSIONS = WRITE_PERMISSIONS | {"triage", "read"}


class LinkedStatus(BaseModel):
    """What GitHub says of a repository the settings name (asked with the installation's token)."""

    repo: str  # owner/name as the settings name it
    access: Literal["read", "write"]  # what the settings ask for
    installed: bool  # the installation reaches it
    repo_id: int = 0
    full_name: str = ""  # as GitHub spells it
    private: bool = True
    permission: str = "none"  # the labeler's there: admin|maintain|write|triage|read|none
    clone_url: str = ""
    default_branch: str = "main"
    share_with: list[str] = Field(default_factory=list)  # its own settings' consent to public repositories
    config: RepoConfig | None = None  # its own `.github/otto.yml` (for tasks there: their checks, limits)


def admit(
    statuses: Sequence[LinkedStatus], labeler: str, own: str
) -> tuple[list[LinkedRepoState], list[str]]:
    """The repositories the run uses, and one line per repository left out or narrowed (with why)."""
    kept: list[LinkedRepoState] = []
    said: list[str] = []
    for s in statuses:
        name = s.full_name or s.repo
        if name.lower() == own.lower():
            said.append(f"`{s.repo}` is this issue's own repository (listed in `repositories:` by mistake)")
            continue
        if not s.installed:
            said.append(f"`{s.repo}` is left out: this App's installation does not reach it (add it there)")
            continue
        if s.permission not in READ_PERMISSIONS:
            said.append(f"`{name}` is left out: @{labeler} has no access to it")
            continue
        access = s.access
        if access == "write" and s.permission not in WRITE_PERMISSIONS:
            said.append(
                f"`{name}` is used read-only: @{labeler} can't write to it ({s.permission}), so no task "
                "changes it"
            )
            access = "read"
        kept.append(
            LinkedRepoState(
                repo=name,
                repo_id=s.repo_id,
                access=access,
                private=s.private,
                clone_url=s.clone_url,
                default_branch=s.default_branch,
                share_with=[n.lower() for n in s.share_with],
                config=s.config,
            )
        )
    return kept, said


def may_flow(source: LinkedRepoState, target_private: bool, target: str) -> bool:
    """Whether content of ``source`` may reach what the run shows in ``target`` (its model's prompts, its
    sandbox, its comments and PRs): a private repository's never reaches a public one, unless the private
    repository's own settings list that one in ``share_with`` (its maintainers' consent, not the run's)."""
    return not source.private or target_private or target.lower() in source.share_with


def withheld_note(source: LinkedRepoState) -> str:
    return (
        f"🔒 `{source.repo}` is private and this issue's repository is public: nothing of it reaches this "
        "run's model, sandbox, comments or pull requests (its own `.github/otto.yml` can allow this "
        "repository with `share_with:`)"
    )
