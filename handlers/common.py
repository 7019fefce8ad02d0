"""What every handler needs: who sent it, is it a bot, which repository and installation."""

from __future__ import annotations

from typing import Any

from app.domain.run import RepoRef


def is_bot(sender: Any) -> bool:
    """Bots (Otto itself above all) start nothing, so bots can't loop."""
    if sender is None:
        return True
    kind = getattr(sender, "type", None)
    login = getattr(sender, "login", "") or ""
    return kind == "Bot" or login.endswith("[bot]")


def repo_ref(event: Any) -> RepoRef | None:
    installation = getattr(event, "installation", None)
    repository = getattr(event, "repository", None)
    if not installation or not repository:
        return None
    owner = repository.owner.login if repository.owner else repository.full_name.split("/")[0]
    return RepoRef(installation_id=installation.id, owner=owner, name=repository.name, repo_id=repository.id)
