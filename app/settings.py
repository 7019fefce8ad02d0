"""Otto's settings: one pydantic-settings object, read from the environment (prefix ``OTTO_``) or ``.env``."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OTTO_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- GitHub App -------------------------------------------------------------------------------
    github_app_id: int | None = None
    github_private_key: SecretStr | None = Field(
        default=None, description="PEM text of the App's private key (or use github_private_key_path)"
    )
    github_private_key_path: Path | None = None
    webhook_secret: SecretStr = SecretStr("")
    github_api_url: str = "https://api.github.com"
    github_graphql_url: str | None = None  # defaults to <api>/graphql
    trigger_label: str = "otto"
    github_max_inline_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="longest rate-limit wait slept inside a worker; longer waits become durable timers",
    )

    # --- Model ------------------------------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OTTO_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OTTO_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL")
    )
    model: str = "claude-sonnet-4-6"
    model_max_retries: int = 4
    model_timeout_s: float = 300.0

    # --- Budgets and bounds -------------------------------------------------------------------------
    budget_usd_default: float = Field(default=5.0, gt=0, description="per run, when otto.yml sets none")
    budget_usd_max: float = Field(default=50.0, gt=0, description="no repository may set more per run")
    max_parallel_tasks: int = 2
    max_active_runs_per_installation: int = Field(default=3, ge=1)  # more runs wait in order
    max_tasks: int = 8
    agent_max_steps: int = 40
    command_timeout_s: float = 300.0
    command_output_limit: int = 16_000
    verify_timeout_s: float = 900.0
    verify_log_limit: int = 60_000
    task_attempt_timeout_s: float = 3600.0
    heartbeat_timeout_s: float = 60.0
    sticky_queue_timeout_s: float = 10.0  # how long a run's next step waits for the worker that ran it last
    max_pilot_retries: int = 1
    delete_merged_branches: bool = True
    command_path_prepend: list[str] = Field(
        default_factory=list, description="directories put first on PATH for agent and verify commands"
    )
    max_webhook_bytes: int = 25 * 1024 * 1024
    webhook_body_timeout_s: float = Field(default=10.0, gt=0, description="a slower upload is cut off (408)")
    webhook_max_concurrent_reads: int = Field(default=64, ge=1, description="more at once are answered 503")
    webhook_max_buffered_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1, description="webhook bodies held in memory at once, at most (503)"
    )

    # --- Engine -------------------------------------------------------------------------------------
    temporal_address: str | None = None  # unset: Otto starts Temporal's dev server itself
    temporal_namespace: str = "default"
    task_queue: str = "otto"  # workflows and the short GitHub/Temporal activities
    model_task_queue: str = "otto-model"  # model-bound activities: classify, plan, pilot, replan
    cpu_task_queue: str = "otto-cpu"  # CPU/disk-bound activities: agent + verify, rebases, file listings
    data_dir: Path = Path(".otto")
    temporal_ui_url: str | None = None

    # --- Observability ------------------------------------------------------------------------------
    log_json: bool = True  # `otto serve|web|worker` log one JSON object per line; false: plain text
    metrics_port: int | None = None  # `otto worker`: serve Prometheus /metrics on this port (on `host`)

    # --- Web ----------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000

    @cached_property
    def private_key_pem(self) -> str | None:
        if self.github_private_key is not None:
            return self.github_private_key.get_secret_value()
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None

    @property
    def graphql_url(self) -> str:
        return self.github_graphql_url or self.github_api_url.rstrip("/") + "/graphql"

    @property
    def has_github_credentials(self) -> bool:
        return self.github_app_id is not None and self.private_key_pem is not None

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def worktrees_dir(self) -> Path:
        return self.data_dir / "worktrees"

    def command_env(self) -> dict[str, str]:
        """Extra environment for the agent's and the checks' commands (PATH only; never secrets)."""
        if not self.command_path_prepend:
            return {}
        path = os.pathsep.join([*self.command_path_prepend, os.environ.get("PATH", "/usr/bin:/bin")])
        return {"PATH": path}

    def secret_values(self) -> list[str]:
        """Every secret Otto holds, for redaction."""
        values = [self.webhook_secret.get_secret_value()]
        if self.anthropic_api_key is not None:
            values.append(self.anthropic_api_key.get_secret_value())
        if self.private_key_pem:
            values.append(self.private_key_pem)
        return [v for v in values if v]
