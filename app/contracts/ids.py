"""Ids and names derived from a run, each written in one place."""

from __future__ import annotations

import re

from app.domain.links import RUN_PREFIX


def run_workflow_id(repo_id: int, issue_number: int, labeling: int = 1) -> str:
    """The run of an issue's ``labeling``-th labeling: ``otto/<repo-id>/<issue>``, then
    ``otto/<repo-id>/<issue>.2``, … Each labeling is its own run (own history, status comment, branches and
    Mission Control page); one is active per issue at a time."""
    suffix = f".{labeling}" if labeling > 1 else ""
    return f"{RUN_PREFIX}/{repo_id}/{issue_number}{suffix}"


def delivery_workflow_id(delivery_id: str) -> str:
    """One per webhook delivery (the durable de-duplication record)."""
    return f"delivery/{delivery_id}"


def gate_workflow_id(installation_id: int) -> str:
    """The installation's queue of active runs."""
    return f"gate/{installation_id}"


def safe_name(text: str) -> str:
    """``text`` as one path component or key part (e.g. a run id in artifact paths)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")
