"""Fault injection and request counters: what tests use to make a route misbehave on purpose."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

from ._http import empty_response, json_response

__all__ = ["ROUTE_NAMES", "Faults"]

#: Route names for ``stats`` and ``inject_fault``.
ROUTE_NAMES = (
    "location",
    "login",
    "link",
    "refresh",
    "logout",
    "profile",
    "delete",
    "api_keys",
    "userpass",
    "function_call",
    "stream",
)


@attrs.define
class _Fault:
    status: int
    body: Mapping[str, Any] | None
    remaining: int


class Faults:
    """Counts requests per route and answers injected faults in their place."""

    def __init__(self) -> None:
        self.stats: collections.Counter[str] = collections.Counter()
        self._faults: dict[str, _Fault] = {}

    def inject(self, route: str, status: int, body: Mapping[str, Any] | None, times: int = 1) -> None:
        """The next ``times`` requests to ``route`` answer ``status`` with ``body``."""
        if route not in ROUTE_NAMES:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTE_NAMES}")
        if times <= 0:
            self._faults.pop(route, None)
        else:
            self._faults[route] = _Fault(status, dict(body) if body is not None else None, times)

    def enter(self, route: str) -> web.Response | None:
        """Count a request to ``route``; the injected reply, if one is pending."""
        self.stats[route] += 1
        fault = self._faults.get(route)
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.remaining <= 0:
            del self._faults[route]
        return (
            json_response(fault.body, fault.status)
            if fault.body is not None
            else empty_response(fault.status)
        )
