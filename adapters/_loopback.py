"""Whether a host is this machine: plain ``http://`` is allowed only there (reliability S4)."""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["is_loopback"]


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ``::1`` (cached: asked on every request)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
