"""``.github/otto.yml``: per-repository settings, all optional."""

from __future__ import annotations

from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

CONFIG_PATH = ".github/otto.yml"


def _as_list(v: object) -> object:
    if isinstance(v, str):
        return [v]
    return v


_FULL_NAME = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"


class LinkedRepo(BaseModel):
    """Another repository a run may read, or also change (``repositories:`` in the settings)."""

    repo: str = Field(pattern=_FULL_NAME)  # owner/name, in the same installation of the App
    access: Literal["read", "write"] = "read"


class RepoConfig(BaseModel):
    base_branch: str | None = None
    setup: list[str] = Field(default_factory=list)
    verify: list[str] = Field(default_factory=list)
    max_tasks: int | None = Field(default=None, ge=1, le=50)
    max_fix_rounds: int = Field(default=3, ge=0, le=10)
    max_ci_fix_rounds: int = Field(default=2, ge=0, le=10)
    budget_usd: float | None = Field(default=None, gt=0)
    model: str | None = None
    pilot: bool = True
    merge_method: Literal["merge", "squash", "rebase"] = "merge"
    review_feedback: bool = True
    paths_denied: list[str] = Field(default_factory=lambda: [".github/workflows/**", ".github/otto.yml"])
    network: Literal["none", "setup"] = "none"  # setup: the setup step may reach public registries
    plan_approval: bool = False  # wait for a writer's `/otto go` (or `/otto plan <feedback>`) after planning
    repositories: list[LinkedRepo] = Field(default_factory=list, max_length=10)
    # a private repository's own consent: the public repositories whose runs may read it (owner/name)
    share_with: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("repositories")
    @classmethod
    def _distinct(cls, v: list[LinkedRepo]) -> list[LinkedRepo]:
        names = [r.repo.lower() for r in v]
        if len(names) != len(set(names)):
            raise ValueError("a repository is listed twice")
        return v

    _normalise_setup = field_validator("setup", "verify", "paths_denied", mode="before")(_as_list)


class RepoConfigError(ValueError):
    pass


def parse_repo_config(text: str | None) -> RepoConfig:
    """Parse the file's text; a missing file is the default config, a broken one a readable error."""
    if text is None or not text.strip():
        return RepoConfig()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RepoConfigError(f"{CONFIG_PATH} is not valid YAML: {e}") from e
    if data is None:
        return RepoConfig()
    if not isinstance(data, dict):
        raise RepoConfigError(f"{CONFIG_PATH} must be a mapping of settings")
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise RepoConfigError(f"{CONFIG_PATH} has invalid settings: {problems}") from e
