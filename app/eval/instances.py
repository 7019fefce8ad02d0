"""Instances in SWE-bench's format (one JSON object per line), and where their repositories are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator


class Instance(BaseModel):
    """One problem: a repository at ``base_commit``, an issue (``problem_statement``), the gold ``patch``
    (for the oracle and for checking the instance), a hidden ``test_patch`` and the tests that decide it."""

    instance_id: str
    repo: str  # "owner/name"
    base_commit: str
    problem_statement: str
    hints_text: str = ""
    patch: str = ""
    test_patch: str
    FAIL_TO_PASS: list[str] = Field(min_length=1)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    otto: dict[str, Any] | None = None  # the repository's `.github/otto.yml` settings for this instance

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_list(cls, v: Any) -> Any:
        """The dataset keeps these lists as JSON-encoded strings; both forms are accepted."""
        return json.loads(v) if isinstance(v, str) else v

    @field_validator("repo")
    @classmethod
    def _owner_name(cls, v: str) -> str:
        owner, _, name = v.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repo must be 'owner/name', not {v!r}")
        return v

    @property
    def repo_dir_name(self) -> str:
        """SWE-bench's convention for the repository's checkout: ``owner__name``."""
        return self.repo.replace("/", "__")

    @property
    def title(self) -> str:
        first = self.problem_statement.strip().splitlines()[0] if self.problem_statement.strip() else ""
        return (first[:97] + "…") if len(first) > 98 else (first or self.instance_id)


def load_instances(path: Path) -> list[Instance]:
    """Every instance of a JSONL file (blank lines skipped); a bad line is an error naming it."""
    out: list[Instance] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            inst = Instance.model_validate_json(line)
        except ValueError as e:
            raise ValueError(f"{path}:{n}: not an instance: {e}") from e
        if inst.instance_id in seen:
            raise ValueError(f"{path}:{n}: instance {inst.instance_id!r} appears twice")
        seen.add(inst.instance_id)
        out.append(inst)
    return out
