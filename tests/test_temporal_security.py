"""Temporal is not an open door: production clusters are reached with mTLS or an API key (and sandboxed
commands can't reach Temporal at all: see test_containment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.service import TLSConfig

from app.engine import connect, connect_options
from app.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_mtls_settings_become_the_clients_tls_config(tmp_path: Path) -> None:
    cert, key, ca = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    ca.write_bytes(b"CA")
    opts = connect_options(
        settings(
            temporal_tls_cert=cert, temporal_tls_key=key, temporal_tls_ca=ca, temporal_tls_server_name="t.x"
        )
    )
    tls = opts["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        b"CERT",
        b"KEY",
        b"CA",
        "t.x",
    )
    assert "api_key" not in opts
    with pytest.raises(ValueError, match="together"):
        connect_options(settings(temporal_tls_cert=cert))


def test_an_api_key_implies_tls_and_is_a_secret() -> None:
    s = settings(temporal_api_key=SecretStr("tc-key-123456"))
    assert connect_options(s) == {"api_key": "tc-key-123456", "tls": True}
    assert "tc-key-123456" in s.secret_values()  # redacted wherever Otto's text leaves the process
    assert connect_options(settings()) == {}


async def test_a_tls_client_does_not_talk_to_a_plaintext_server(temporal_address: str) -> None:
    with pytest.raises(RuntimeError):
        await connect(temporal_address, "default", tls=True)
