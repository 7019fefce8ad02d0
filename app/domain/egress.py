"""Which addresses the sandbox's setup step may reach through Otto's egress proxy (pure).

Public internet addresses only, by default: loopback, private (RFC 1918, unique local), link-local (the
cloud metadata address 169.254.169.254), carrier-grade NAT, multicast, reserved and unspecified
addresses are refused, whatever name resolved to them. An operator's allowlist
(``OTTO_SANDBOX_EGRESS_ALLOW``) may open specific hosts or networks, e.g. a private package registry:
entries are host names (``pypi.internal``; ``*.corp.example`` for subdomains) or networks
(``10.20.0.0/16``), each optionally with ``:port`` — an entry matches when the host name or the connected
address does (and the port, when given).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


def _host_matches(pattern: str, host: str) -> bool:
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return host == pattern


def _entry_matches(entry: str, host: str, ip: IPAddress, port: int) -> bool:
    entry = entry.strip()
    if not entry:
        return False
    try:
        return ip in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        pass
    name, sep, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    if not sep:
        name = entry
    elif not entry_port.isdigit() or int(entry_port) != port:
        return False
    try:
        return ip in ipaddress.ip_network(name, strict=False)
    except ValueError:
        return _host_matches(name, host)


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_public(ip.ipv4_mapped)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def egress_verdict(host: str, ip: IPAddress, port: int, allow: Sequence[str] = ()) -> Verdict:
    """May the sandbox connect to ``ip``:``port`` (resolved from ``host``)?"""
    if not 0 < port < 65536:
        return Verdict(False, f"port {port} is invalid")
    if any(_entry_matches(e, host, ip, port) for e in allow):
        return Verdict(True, f"{host} ({ip}) is on the operator's allowlist")
    if is_public(ip):
        return Verdict(True, f"{ip} is a public address")
    return Verdict(
        False,
        f"{host} resolves to {ip}, which is not a public address (loopback, private, link-local and metadata "
        "addresses are never reachable from the sandbox unless the operator allowlists them)",
    )
