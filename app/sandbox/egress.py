"""Otto's egress proxy for the sandbox's setup step: HTTP ``CONNECT`` and plain-HTTP forwarding over a Unix
socket that is bound into the sandbox (where :mod:`app.sandbox.forwarder` relays TCP to it).

Otto resolves every name itself and connects only to addresses :func:`app.domain.egress.egress_verdict`
allows, so a name that resolves to 127.0.0.1 (or is rebound to it between two lookups) never reaches
Temporal, Otto's web process or the metadata service. Refusals are answered ``403`` with the reason, which
the command sees in its output. Each connection is one thread; the proxy holds no credentials.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from app.domain.egress import egress_verdict

log = logging.getLogger("otto.sandbox.egress")
_MAX_HEAD = 16 * 1024
_CONNECT_TIMEOUT_S = 15.0
_IDLE_TIMEOUT_S = 300.0


class EgressProxy:
    def __init__(self, socket_path: Path, allow: Sequence[str] = ()) -> None:
        self.socket_path = socket_path
        self.allow = list(allow)
        self._server: socket.socket | None = None
        self._lock = threading.Lock()

    def start(self) -> Path:
        """Listen (once per process); returns the socket path to bind into sandboxes."""
        with self._lock:
            if self._server is not None:
                return self.socket_path
            self.socket_path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.socket_path.parent, 0o711)  # noqa: S103 - bwrap (as the sandbox's uid) binds the socket
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(self.socket_path))
            os.chmod(self.socket_path, 0o666)  # noqa: S103 - the sandbox's uid connects; its dir is 0711
            server.listen(128)
            self._server = server
            threading.Thread(target=self._accept, name="otto-egress", daemon=True).start()
            return self.socket_path

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def _accept(self) -> None:
        server = self._server
        while server is not None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.closing(conn):
            conn.settimeout(_IDLE_TIMEOUT_S)
            got = _read_head(conn)
            if got is None:
                return
            head, early = got
            request_line, _, rest = head.partition(b"\r\n")
            parts = request_line.decode("latin-1").split()
            if len(parts) != 3:
                _refuse(conn, 400, "malformed request")
                return
            method, target, version = parts
            if method.upper() == "CONNECT":
                host, _, port_text = target.rpartition(":")
                host = host.strip("[]")
                forward = b""
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    _refuse(conn, 400, "only CONNECT and absolute http:// requests are proxied")
                    return
                host, port_text = url.hostname, str(url.port or 80)
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                headers = b"\r\n".join(
                    h for h in rest.split(b"\r\n") if not h.lower().startswith((b"proxy-", b"connection:"))
                )
                forward = f"{method} {path} {version}\r\n".encode("latin-1") + headers
                forward = forward.rstrip(b"\r\n") + b"\r\nConnection: close\r\n\r\n"
            if not port_text.isdigit():
                _refuse(conn, 400, "missing port")
                return
            upstream = self._connect(conn, host, int(port_text))
            if upstream is None:
                return
            with contextlib.closing(upstream):
                if method.upper() == "CONNECT":
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                upstream.sendall(forward + early)
                _splice(conn, upstream)

    def _connect(self, conn: socket.socket, host: str, port: int) -> socket.socket | None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            _refuse(conn, 502, f"cannot resolve {host}: {e}")
            return None
        reasons: list[str] = []
        for family, socktype, proto, _, addr in infos:
            ip = ipaddress.ip_address(str(addr[0]).split("%")[0])
            verdict = egress_verdict(host, ip, port, self.allow)
            if not verdict.allowed:
                reasons.append(verdict.reason)
                continue
            s = socket.socket(family, socktype, proto)
            s.settimeout(_CONNECT_TIMEOUT_S)
            try:
                s.connect(addr)
            except OSError as e:
                s.close()
                reasons.append(f"{ip}: {e}")
                continue
            s.settimeout(_IDLE_TIMEOUT_S)
            return s
        log.info("sandbox egress to %s:%s refused: %s", host, port, "; ".join(reasons))
        _refuse(conn, 403, "; ".join(reasons) or f"{host} has no address")
        return None


def _read_head(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """The request head (through its final CRLF) and whatever the client already sent after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = conn.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
        if len(data) > _MAX_HEAD:
            _refuse(conn, 431, "request head too large")
            return None
    head, _, early = data.partition(b"\r\n\r\n")
    return head + b"\r\n", early


def _refuse(conn: socket.socket, status: int, reason: str) -> None:
    body = f"Otto's sandbox egress proxy refused this connection: {reason}\n".encode()
    with contextlib.suppress(OSError):
        conn.sendall(
            f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )


def _splice(a: socket.socket, b: socket.socket) -> None:
    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=pipe, args=(b, a), daemon=True)
    t.start()
    pipe(a, b)
    t.join(_IDLE_TIMEOUT_S)
