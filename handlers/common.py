"""What every handler needs: who sent it, is it a bot, which repository and installation."""

from __future__ import annotations

from typing import Any

from app.domain.run import RepoRef
from app.events import Event


def is_bot(sender: Any) -> bool:
    """Bots (Otto itself above all) start nothing, so bots can't loop."""
    if sender is None:
        return True
    kind = getattr(sender, "type", None)
    login = getattr(sender, "login", "") or ""
    return kind == "Bot" or login.endswith("[bot]")


def repo_ref(event: Event) -> RepoRef | None:
    if event.installation is None or event.repository is None:
        return None
    repo = event.repository
    return RepoRef(
        installation_id=event.installation.id, owner=repo.owner.login, name=repo.name, repo_id=repo.id
    )
