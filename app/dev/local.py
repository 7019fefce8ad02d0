"""A local world for `otto demo` and the tests: the GitHub simulator and the scripted model on loopback,
an App registered in the simulator, and Otto (web server + worker) wired to them by base URL."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from starlette.types import ASGIApp
from temporalio.client import Client

from app.dev.fake_llm import FakeLLM
from app.dev.fake_llm import create_app as create_fake_llm_app
from app.dev.simulator import Simulator
from app.dev.simulator import create_app as create_simulator_app
from app.runtime import Services, running_worker, web_app
from app.serve_thread import RunningServer, serve_in_thread
from app.settings import Settings
from app.webserver import RunningWeb
from app.webserver import serve_in_thread as serve_web_in_thread

APP_ID = 424242
APP_SLUG = "otto"
# The toolchain `make` builds for sandboxed commands (a venv with pytest), when running from a checkout.
PROJECT_SANDBOX_TOOLS = Path(__file__).resolve().parents[2] / ".cache" / "sandbox-tools"


def new_private_key() -> tuple[str, str]:
    """A fresh RSA key pair (private PEM, public PEM) for the local App."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class LocalWorld:
    sim: Simulator
    sim_server: RunningServer
    model: FakeLLM
    model_server: RunningServer
    private_key_pem: str
    webhook_secret: str
    model_api_key: str
    app_id: int = APP_ID
    extra: dict[str, Any] = field(default_factory=dict)
    # toolchains for sandboxed commands (tests point this at a copy every uid can read)
    sandbox_tools: ClassVar[list[Path]] = [PROJECT_SANDBOX_TOOLS] if PROJECT_SANDBOX_TOOLS.is_dir() else []

    @classmethod
    def start(
        cls,
        root: Path,
        scenario: Mapping[str, Any] | Path | None = None,
        wrap_model: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> LocalWorld:
        """``wrap_model`` may wrap the scripted model's ASGI app (e.g. a benchmark timing its answers)."""
        root.mkdir(parents=True, exist_ok=True)
        sim = Simulator(root / "github")
        sim_server = serve_in_thread(create_simulator_app(sim), name="github-simulator")
        sim.base_url = sim_server.url
        api_key = "sk-local-" + secrets.token_hex(8)
        model = FakeLLM(scenario, api_key=api_key)
        model_app: ASGIApp = create_fake_llm_app(model)
        try:
            model_server = serve_in_thread(
                wrap_model(model_app) if wrap_model else model_app, name="scripted-model"
            )
        except BaseException:
            sim.close()
            sim_server.stop()
            raise
        private_pem, public_pem = new_private_key()
        webhook_secret = secrets.token_hex(16)
        sim.register_app(APP_ID, APP_SLUG, public_pem, webhook_url=None, webhook_secret=webhook_secret)
        return cls(sim, sim_server, model, model_server, private_pem, webhook_secret, api_key)

    def settings(self, data_dir: Path, temporal_address: str | None, **overrides: Any) -> Settings:
        app = self.sim.app(self.app_id)
        values: dict[str, Any] = {
            # Mission Control: sign-in with the simulator's user authorization flow
            "github_client_id": app.client_id,
            "github_client_secret": SecretStr(app.client_secret),
            "github_web_url": self.sim_server.url,
            "session_secret": SecretStr(secrets.token_hex(16)),
            "github_app_id": self.app_id,
            "github_private_key": SecretStr(self.private_key_pem),
            "webhook_secret": SecretStr(self.webhook_secret),
            "github_api_url": f"{self.sim_server.url}/api/v3",
            "anthropic_api_key": SecretStr(self.model_api_key),
            "anthropic_base_url": self.model_server.url,
            "model_max_retries": 2,
            "outage_first_wait_s": 1.0,  # the simulator's and the scripted model's outages end in seconds
            "outage_max_wait_s": 5.0,
            "temporal_address": temporal_address,
            "data_dir": data_dir,
            "sandbox_tools": list(self.sandbox_tools),
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def stop(self) -> None:
        self.sim.close()
        self.sim_server.stop()
        self.model.release_all()  # nothing held may keep the model's server from stopping
        self.model_server.stop()


@contextlib.asynccontextmanager
async def running_otto(world: LocalWorld, settings: Settings, client: Client) -> AsyncIterator[RunningWeb]:
    """Otto's web server (own thread, real HTTP, the production server stack) and a worker (this event
    loop), webhooks pointed at it. Without ``public_url`` the server's own URL is the base of the links Otto
    posts and the sign-in's."""
    server = serve_web_in_thread(web_app(settings, client), name="otto-web")
    if settings.public_url is None:
        settings = settings.model_copy(update={"public_url": server.url})
    services = Services.from_settings(settings)
    world.sim.set_webhook_url(world.app_id, f"{server.url}/webhooks")
    sim_app = world.sim.app(world.app_id)
    callback_before, sim_app.callback_url = sim_app.callback_url, f"{settings.public_url}/login/callback"
    try:
        async with running_worker(client, services):
            yield server
    finally:
        world.sim.set_webhook_url(world.app_id, None)
        sim_app.callback_url = callback_before
        server.stop()
        await services.llm.aclose()
        await asyncio.sleep(0)
