"""The App's installation changing under a run: why the run ended, in words the run's state shows."""

from __future__ import annotations

from typing import Literal

Change = Literal["deleted", "suspend", "removed"]
NOTHING_MORE = "this run ended, and nothing more is pushed or posted"


def stop_reason(change: Change, account: str, sender: str, repository: str | None = None) -> str:
    """The final reason of a run stopped because the App can no longer act on its repository."""
    who = f" by @{sender}" if sender else ""
    where = account or "this account"
    if change == "deleted":
        return f"The Otto App was uninstalled from {where}{who}: {NOTHING_MORE}."
    if change == "suspend":
        return f"The Otto App's installation on {where} was suspended{who}: {NOTHING_MORE}."
    what = repository or "This repository"
    return f"{what} was removed from the Otto App's installation on {where}{who}: {NOTHING_MORE}."
