"""Otto's egress proxy for the sandbox's setup step: HTTP ``CONNECT`` and plain-HTTP forwarding over a Unix
socket that is bound into the sandbox (where :mod:`app.sandbox.forwarder` relays TCP to it).

Otto resolves every name itself and connects only to addresses :func:`app.domain.egress.egress_verdict`
allows, so a name that resolves to 127.0.0.1 (or is rebound to it between two lookups) never reaches
Temporal, Otto's web process or the metadata service. Refusals are answered ``403`` with the reason, which
the command sees in its output. The proxy holds no credentials.

A setup command is untrusted, so the proxy is built to outlast one that floods it:

- every sandboxed command gets a **lease**: a listening socket of its own, bound into that sandbox only, with
  its own caps (:class:`EgressLimits`: concurrent connections, bytes either way, how long a request head and
  an idle connection may take). A flood fills its own lease and is refused there; other commands, other
  tenants, keep theirs. The lease ends with its command: its socket is removed and its connections closed.
- all connections of a worker share a **total cap** well below the process's file-descriptor limit (each
  connection holds two), so Otto keeps descriptors for itself; Otto raises its own soft limit to the hard one.
- one asyncio loop on one thread serves every lease: no thread per connection. When the process is out of
  descriptors anyway (``EMFILE``/``ENFILE``), asyncio's accept loop pauses and resumes by itself; the proxy
  never stops accepting for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import os
import resource
import socket
import threading
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.domain.egress import egress_verdict

log = logging.getLogger("otto.sandbox.egress")
_MAX_HEAD = 16 * 1024
_FDS_KEPT_FOR_OTTO = 256  # descriptors the proxy never takes: Otto's own sockets, files, git, Temporal
_REFUSALS_AT_ONCE = 32  # refused connections answered with the reason; past that, reset at once
_REFUSAL_READ_S = 1.0


@dataclass(frozen=True)
class EgressLimits:
    connections_per_lease: int = 64  # at once, for one sandboxed command
    bytes_per_lease: int = 4 << 30  # both directions, over the command's life
    head_timeout_s: float = 15.0  # to send the request head
    connect_timeout_s: float = 15.0
    idle_timeout_s: float = 120.0  # no byte either way for this long: closed
    connections_total: int = 0  # 0: from the descriptor limit (half of what is left after Otto's share)


def raise_fd_limit() -> int:
    """Raise this process's soft descriptor limit to the hard one; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class _Lease:
    name: str
    path: Path
    limits: EgressLimits
    server: asyncio.AbstractServer | None = None
    open: int = 0
    bytes: int = 0
    refused: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class EgressProxy:
    def __init__(
        self, socket_dir: Path, allow: Sequence[str] = (), limits: EgressLimits | None = None
    ) -> None:
        self.socket_dir = socket_dir
        self.allow = list(allow)
        self.limits = limits or EgressLimits()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._open_total = 0
        self._refusing = 0
        self._last_fd_warning = -1e9
        self._total_cap = self.limits.connections_total

    # --- the loop ------------------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                soft = raise_fd_limit()
                if not self._total_cap:
                    self._total_cap = max(16, (soft - _FDS_KEPT_FOR_OTTO) // 2)
                self.socket_dir.mkdir(parents=True, exist_ok=True)
                os.chmod(self.socket_dir, 0o711)  # noqa: S103 - bwrap (as the sandbox's uid) binds the socket
                loop = asyncio.new_event_loop()
                loop.set_exception_handler(self._loop_exception)
                threading.Thread(target=loop.run_forever, name="otto-egress", daemon=True).start()
                self._loop = loop
            return self._loop

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        loop = self._ensure_loop()
        asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of descriptors, asyncio pauses accepting for a second and tries again: said once a minute,
        without a traceback. A retry timer left over from a lease closed meanwhile is nothing to report."""
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            now = loop.time()
            if now - self._last_fd_warning > 60:
                self._last_fd_warning = now
                log.warning(
                    "the sandbox egress proxy is out of file descriptors (%s); it accepts again once some "
                    "are free",
                    context.get("exception"),
                )
            return
        if "_start_serving" in repr(context.get("handle")) and isinstance(
            context.get("exception"), ValueError
        ):
            return  # the pause's retry, after its lease closed the socket
        loop.default_exception_handler(context)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)

    # --- leases -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lease(self, name: str = "setup") -> Iterator[Path]:
        """A socket of its own for one sandboxed command (bind it into that sandbox), closed with it."""
        path = self.socket_dir / f"egress-{os.getpid()}-{next(self._ids)}.sock"
        lease = _Lease(name, path, self.limits)
        self._call(self._open(lease))
        try:
            yield path
        finally:
            self._call(self._close(lease))
            if lease.refused:
                log.warning(
                    "sandbox egress of %s: %d connection(s) refused at its lease's caps (%d at once, %d B)",
                    name,
                    lease.refused,
                    self.limits.connections_per_lease,
                    self.limits.bytes_per_lease,
                )

    async def _open(self, lease: _Lease) -> None:
        with contextlib.suppress(FileNotFoundError):
            lease.path.unlink()
        lease.server = await asyncio.start_unix_server(
            lambda r, w: self._accepted(lease, r, w), path=str(lease.path), backlog=128, limit=_MAX_HEAD
        )
        os.chmod(lease.path, 0o666)  # noqa: S103 - the sandbox's uid connects; its dir is 0711

    async def _close(self, lease: _Lease) -> None:
        if lease.server is not None:
            lease.server.close()
        for task in list(lease.tasks):
            task.cancel()
        if lease.tasks:
            await asyncio.wait(lease.tasks, timeout=5)
        with contextlib.suppress(FileNotFoundError):
            lease.path.unlink()

    def _accepted(self, lease: _Lease, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        over = (
            "too many connections at once from this command"
            if lease.open >= limits.connections_per_lease
            else "this command has used up its byte allowance"
            if lease.bytes >= limits.bytes_per_lease
            else "Otto's egress proxy is at its connection limit"
            if self._open_total >= self._total_cap
            else None
        )
        if over is not None:
            lease.refused += 1
            if self._refusing < _REFUSALS_AT_ONCE:  # said, once the client's request is read (else a reset)
                self._refusing += 1
                task = asyncio.get_running_loop().create_task(self._refuse(reader, writer, over))
                task.add_done_callback(lambda _: setattr(self, "_refusing", self._refusing - 1))
            else:
                writer.transport.abort()  # a flood: the descriptor is given back at once
            return
        lease.open += 1
        self._open_total += 1
        task = asyncio.get_running_loop().create_task(self._serve(lease, reader, writer))
        lease.tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            lease.tasks.discard(t)
            lease.open -= 1
            self._open_total -= 1

        task.add_done_callback(done)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REFUSAL_READ_S)
        with contextlib.suppress(Exception):
            writer.write(_refusal(503, reason))
            await asyncio.wait_for(writer.drain(), _REFUSAL_READ_S)
        writer.close()

    # --- one connection ------------------------------------------------------------------------------
    async def _serve(self, lease: _Lease, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.limits.head_timeout_s)
            except asyncio.LimitOverrunError:
                writer.write(_refusal(431, "request head too large"))
                return
            except (TimeoutError, asyncio.IncompleteReadError, OSError):
                return  # nothing sent in time, or the client went away: closed
            request = _parse(head)
            if isinstance(request, str):
                writer.write(_refusal(400, request))
                return
            method, host, port, forward = request
            connected = await self._connect(host, port)
            if isinstance(connected, str):
                log.info("sandbox egress to %s:%s refused: %s", host, port, connected)
                writer.write(_refusal(403, connected))
                return
            up_reader, upstream = connected
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.write(forward)
            await asyncio.gather(
                self._pipe(lease, reader, upstream),
                self._pipe(lease, up_reader, writer),
                return_exceptions=True,
            )
        finally:
            for w in (writer, upstream):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def _pipe(self, lease: _Lease, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while lease.bytes < self.limits.bytes_per_lease:
                data = await asyncio.wait_for(src.read(65536), self.limits.idle_timeout_s)
                if not data:
                    break
                lease.bytes += len(data)
                dst.write(data)
                await asyncio.wait_for(dst.drain(), self.limits.idle_timeout_s)
        finally:
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()

    async def _connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        """A connection to an allowed address of ``host``, or why there is none."""
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self.limits.connect_timeout_s
            )
        except (OSError, UnicodeError, TimeoutError) as e:
            return f"cannot resolve {host}: {e}"
        reasons: list[str] = []
        for _family, _type, _proto, _, addr in infos:
            ip = ipaddress.ip_address(str(addr[0]).split("%")[0])
            verdict = egress_verdict(host, ip, port, self.allow)
            if not verdict.allowed:
                reasons.append(verdict.reason)
                continue
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(ip), port), self.limits.connect_timeout_s
                )
            except (OSError, TimeoutError) as e:
                reasons.append(f"{ip}: {e or type(e).__name__}")
        return "; ".join(reasons) or f"{host} has no address"


def _parse(head: bytes) -> tuple[str, str, int, bytes] | str:
    """(method, host, port, what to send upstream first) of a proxy request head, or why it is refused."""
    if len(head) > _MAX_HEAD:
        return "request head too large"
    request_line, _, rest = head.partition(b"\r\n")
    parts = request_line.decode("latin-1").split()
    if len(parts) != 3:
        return "malformed request"
    method, target, version = parts
    if method.upper() == "CONNECT":
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")
        forward = b""
    else:
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            return "only CONNECT and absolute http:// requests are proxied"
        host, port_text = url.hostname, str(url.port or 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = b"\r\n".join(
            h
            for h in rest.rstrip(b"\r\n").split(b"\r\n")
            if h and not h.lower().startswith((b"proxy-", b"connection:"))
        )
        forward = f"{method} {path} {version}\r\n".encode("latin-1") + headers
        forward = forward.rstrip(b"\r\n") + b"\r\nConnection: close\r\n\r\n"
    if not port_text.isdigit() or not host:
        return "missing port"
    return method.upper(), host, int(port_text), forward


def _refusal(status: int, reason: str) -> bytes:
    body = f"Otto's sandbox egress proxy refused this connection: {reason}\n".encode()
    return (
        f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
