"""Attacks on the setup step's egress proxy, as a setup command would make them through its forwarder: a
flood of idle connections, a slow request head, and running Otto's process out of file descriptors. Each must
cost the flooding command its own lease, never another command's (another tenant's) setup, and never stop
the proxy."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.sandbox.egress import EgressLimits, EgressProxy
from tests.test_sandbox import registry  # noqa: F401 - the fixture: a local package registry

FLOOD = 400  # more than a lease may hold, fewer than the test process may open


def request(sock_path: Path, url: str, timeout: float = 20.0) -> bytes:
    """A plain-HTTP proxy request through the lease's socket, as the forwarder relays it; the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


@contextlib.contextmanager
def idle_connections(sock_path: Path, count: int) -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.append(s)
            s.connect(str(sock_path))
        yield held
    finally:
        for s in held:
            s.close()


def port_of(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


@pytest.fixture
def proxy(tmp_path: Path, registry: str) -> Iterator[EgressProxy]:  # noqa: F811
    p = EgressProxy(tmp_path / "egress", allow=[f"127.0.0.1/32:{port_of(registry)}"])
    yield p
    p.close()


def test_a_flood_of_idle_connections_costs_its_own_lease_not_anothers(
    proxy: EgressProxy,
    registry: str,  # noqa: F811
) -> None:
    cap = proxy.limits.connections_per_lease
    with proxy.lease("tenant A") as a, proxy.lease("tenant B") as b:
        before = len(os.listdir("/proc/self/fd"))  # this process's own, the proxy's loop and both leases
        with idle_connections(a, cap):
            # A's next connection is refused by A's own cap, with the reason ...
            refused = request(a, registry)
            assert b" 503 " in refused.split(b"\r\n")[0]
            assert b"too many connections at once from this command" in refused
            # ... then a flood: past a few refusals said politely, the rest are reset at once
            with idle_connections(a, FLOOD):
                with pytest.raises((ConnectionResetError, BlockingIOError)):  # reset, or the backlog is full
                    request(a, registry)
                # B, another command (another tenant), still reaches the registry
                assert b"hello from the registry" in request(b, registry)
                # besides the test's own FLOOD + cap client sockets, the proxy holds A's cap and a few
                # refusals being answered, not the flood
                proxy_side = len(os.listdir("/proc/self/fd")) - before - (FLOOD + cap)
                assert proxy_side <= cap + 32 + 8, proxy_side
    # the flood is gone: a new lease works as before
    with proxy.lease("tenant A again") as again:
        assert b"hello from the registry" in request(again, registry)


def test_a_lease_ends_with_its_command(proxy: EgressProxy, registry: str) -> None:  # noqa: F811
    with proxy.lease() as a:
        tunnel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tunnel.settimeout(10)
        tunnel.connect(str(a))
        tunnel.sendall(f"CONNECT 127.0.0.1:{port_of(registry)} HTTP/1.1\r\n\r\n".encode())
        assert tunnel.recv(4096).startswith(b"HTTP/1.1 200 Connection established")
        assert a.exists()
    assert not a.exists()  # its socket is gone: nothing in a later sandbox can reach it
    assert tunnel.recv(1) == b""  # and the tunnel it held open was closed with it
    tunnel.close()


def test_a_request_head_that_never_comes_is_cut_off(tmp_path: Path) -> None:
    proxy = EgressProxy(tmp_path / "egress", limits=EgressLimits(head_timeout_s=0.3))
    try:
        with proxy.lease() as a, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
            slow.connect(str(a))
            slow.sendall(b"GET http://example.com/ HTTP/1.1\r\n")  # and never the rest
            slow.settimeout(10)  # a bound for the test; the proxy closes it after 0.3 s
            assert slow.recv(1) == b""
    finally:
        proxy.close()


EXHAUST = """
import contextlib, os, resource, socket, sys, time
from pathlib import Path
from app.sandbox.egress import EgressLimits, EgressProxy
from tests.test_egress import idle_connections, request

root, registry, port = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
limits = EgressLimits(connections_per_lease=10_000, connections_total=10_000)  # no cap protects it
proxy = EgressProxy(root, [f"127.0.0.1/32:{port}"], limits)
with proxy.lease("flooder") as a, proxy.lease("victim") as b:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 40, hard))
    held = []
    with contextlib.suppress(OSError):  # connect until this process has no descriptor left
        for _ in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.append(s)
            s.connect(str(a))
    print("exhausted after", len(held), flush=True)
    time.sleep(1.5)  # the proxy's accept meets EMFILE meanwhile (nothing to wait for: it is silent)
    for s in held:
        s.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print("victim:", request(b, registry, timeout=30).decode().splitlines()[-1], flush=True)
    print("flooder:", request(a, registry, timeout=30).decode().splitlines()[-1], flush=True)
proxy.close()
"""


def test_out_of_file_descriptors_the_proxy_pauses_and_accepts_again(
    tmp_path: Path,
    registry: str,  # noqa: F811
) -> None:
    """The process runs out of descriptors (in a process of its own: no other test shares the shortage).
    Accepting fails with EMFILE meanwhile; once descriptors are free, every lease is served again, the flooded
    one included. The proxy before this change stopped accepting for good at the first EMFILE."""
    out = subprocess.run(
        [sys.executable, "-c", EXHAUST, str(tmp_path / "egress"), registry, str(port_of(registry))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "exhausted after" in out.stdout
    assert "victim: hello from the registry" in out.stdout, out.stdout + out.stderr
    assert "flooder: hello from the registry" in out.stdout, out.stdout + out.stderr
