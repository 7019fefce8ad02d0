"""A real S3-compatible server for the tests: moto's standalone server (``moto_server``), on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from app.artifacts import S3ArtifactStore
from bench.common import LOOPBACK, VENV_BIN, ManagedProcess, free_port, wait_http

ACCESS_KEY = "otto-test-key"
SECRET_KEY = "otto-test-secret"  # moto accepts any credentials; S3 clients must still sign with some
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str

    def store(self, bucket: str, prefix: str = "") -> S3ArtifactStore:
        """A store on ``bucket`` (created when missing) under ``prefix``."""
        store = S3ArtifactStore.connect(
            f"s3://{bucket}/{prefix}",
            endpoint_url=self.endpoint,
            region=REGION,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
        )
        with contextlib.suppress(store.client.exceptions.BucketAlreadyOwnedByYou):
            store.client.create_bucket(Bucket=bucket)
        return store

    def settings(self, bucket: str, prefix: str = "otto") -> dict[str, object]:
        """Settings overrides pointing Otto's artifacts at ``s3://bucket/prefix`` on this server."""
        from pydantic import SecretStr

        self.store(bucket, prefix)
        return {
            "artifacts_url": f"s3://{bucket}/{prefix}",
            "s3_endpoint_url": self.endpoint,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SecretStr(SECRET_KEY),
        }


@contextlib.asynccontextmanager
async def running_s3(root: Path) -> AsyncIterator[S3Server]:
    port = free_port()
    proc = ManagedProcess(
        "moto_server", [str(VENV_BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)], root / "moto.log"
    ).start()
    try:
        endpoint = f"http://{LOOPBACK}:{port}"
        await wait_http(endpoint + "/moto-api/", proc)
        yield S3Server(endpoint)
    finally:
        proc.stop()
