"""The client address a request counts against (throttling, rate limits, connection caps).

``X-Forwarded-For`` and ``Forwarded`` (RFC 7239) are believed only when the TCP peer is a
configured trusted proxy: from anyone else they are attacker-chosen and would let one client
pose as any number of addresses. Behind trusted proxies the client is the right-most address
in the chain that is not itself a trusted proxy (left-most entries can be forged by the client).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = ["ClientAddresses"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:4711"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class ClientAddresses:
    """Resolves a request's client address given the trusted proxies."""

    def __init__(self, trusted_proxies: Iterable[str]):
        self._trusted: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies
        )

    def _is_trusted(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == net.version and ip in net for net in self._trusted)

    def client(self, peer: str | None, headers: object) -> str:
        """The address to count against: the peer, or the forwarded client behind trusted proxies."""
        peer_ip = _parse_ip(peer or "")
        if peer_ip is None:
            return peer or "unknown"
        if not self._trusted or not self._is_trusted(peer_ip):
            return str(peer_ip)
        get = getattr(headers, "getall", None)
        chain: list[str] = []
        if get is not None:
            for value in get("Forwarded", []):
                for element in str(value).split(","):
                    match = _FOR.search(element)
                    chain.append(match.group(1) if match else "")
            if not chain:
                for value in get("X-Forwarded-For", []):
                    chain.extend(str(value).split(","))
        for hop in reversed(chain):
            ip = _parse_ip(hop)
            if ip is None:
                return str(peer_ip)  # a garbled chain: count against the proxy, not a made-up name
            if not self._is_trusted(ip):
                return str(ip)
        return str(peer_ip)
