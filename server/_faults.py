"""Fault injection and request counters: what tests use to make a route misbehave on purpose.

A route holds a queue of :class:`Fault` steps; each request to it takes the next step.
A step answers a status (with a JSON or raw body and headers such as ``Retry-After``),
resets the connection (RST, no response byte), hangs until the client gives up or the
server stops, or lets the request through (``None``). An empty queue is normal service.
So "503 with ``Retry-After: 1`` twice, then normal" is ``[Fault.reply(503, headers=...)] * 2``.

Faults act before the route does anything, so a faulted request changes no state on
the server: tests can count attempts (``stats``) and know none of them was applied.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import attrs
from aiohttp import web

from ._http import empty_response, json_response

__all__ = ["ROUTE_NAMES", "Fault", "FaultReply", "Faults"]

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

FaultKind = Literal["reply", "reset", "hang"]
_MAX_STEPS: Final = 10_000


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else dict(value)


def _frozen_headers(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@attrs.frozen
class Fault:
    """One faulted answer. Build it with :meth:`reply`, :meth:`reset` or :meth:`hang`."""

    kind: FaultKind
    status: int = 500
    #: A JSON object for the body (``None``: empty body, unless ``raw`` is given).
    body: Mapping[str, Any] | None = attrs.field(default=None, converter=_frozen_mapping)
    #: Bytes sent as the body as they are (malformed JSON, HTML error pages...).
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_headers)

    @classmethod
    def reply(
        cls,
        status: int,
        body: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> Fault:
        """Answer ``status`` with ``body`` (JSON) or ``raw`` bytes, plus ``headers``."""
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        if body is not None and raw is not None:
            raise ValueError("give a JSON body or raw bytes, not both")
        return cls("reply", status, body, raw, content_type, headers or {})

    @classmethod
    def reset(cls) -> Fault:
        """Drop the connection with a TCP reset: the client gets no response byte."""
        return cls("reset")

    @classmethod
    def hang(cls) -> Fault:
        """Never answer: hold the request until the client gives up or the server stops."""
        return cls("hang")

    @classmethod
    def from_json(cls, data: Any) -> Fault | None:
        """A step of the HTTP hook: ``null`` (normal service), ``{"reset": true}``,
        ``{"hang": true}`` or ``{"status", "body"?, "headers"?}``. Raises ``ValueError``."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise ValueError("a fault step must be an object or null")
        if data.get("reset") is True:
            return cls.reset()
        if data.get("hang") is True:
            return cls.hang()
        status, body, headers = data.get("status"), data.get("body"), data.get("headers")
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("a reply step needs an integer status")
        if body is not None and not isinstance(body, Mapping):
            raise ValueError("body must be an object or null")
        if headers is not None and not (
            isinstance(headers, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise ValueError("headers must map strings to strings")
        return cls.reply(status, body, headers=headers)

    def response(self) -> web.StreamResponse:
        """The reply to send (for ``reset`` and ``hang``, a marker the middleware acts on)."""
        if self.kind != "reply":
            return FaultReply(self)
        if self.raw is not None:
            resp = web.Response(
                status=self.status, body=self.raw, headers={"Content-Type": self.content_type}
            )
        elif self.body is not None:
            resp = json_response(self.body, self.status)
        else:
            resp = empty_response(self.status)
        resp.headers.update(self.headers)
        return resp


class FaultReply(web.Response):
    """Returned by a route for a connection-level fault; :meth:`Faults.act` carries it out."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(status=599)
        self.fault = fault


class Faults:
    """Counts requests per route and answers injected faults in their place."""

    def __init__(self) -> None:
        self.stats: collections.Counter[str] = collections.Counter()
        self._queues: dict[str, collections.deque[Fault | None]] = {}
        self._release = asyncio.Event()

    def inject(
        self,
        route: str,
        status: int,
        body: Mapping[str, Any] | None,
        times: int = 1,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next ``times`` requests to ``route`` answer ``status`` with ``body`` (and ``headers``)."""
        self.sequence(route, [Fault.reply(status, body, headers=headers)] * max(times, 0))

    def sequence(self, route: str, steps: Iterable[Fault | None]) -> None:
        """The next requests to ``route`` take ``steps`` in order (``None``: served normally),
        then the route is normal again. Replaces what was queued for ``route``."""
        if route not in ROUTE_NAMES:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTE_NAMES}")
        queue = collections.deque(steps)
        if len(queue) > _MAX_STEPS:
            raise ValueError(f"at most {_MAX_STEPS} fault steps per route")
        if not all(step is None or isinstance(step, Fault) for step in queue):
            raise TypeError("fault steps must be Fault objects or None")
        if queue:
            self._queues[route] = queue
        else:
            self._queues.pop(route, None)

    def pending(self, route: str) -> int:
        """Steps still queued for ``route``."""
        return len(self._queues.get(route, ()))

    def clear(self) -> None:
        """Normal service everywhere; hanging requests are let go."""
        self._queues.clear()
        self.release()

    def release(self) -> None:
        """End every hanging request (their connections are closed without an answer)."""
        self._release.set()
        self._release = asyncio.Event()

    def enter(self, route: str) -> web.StreamResponse | None:
        """Count a request to ``route``; the injected reply, if one is pending."""
        self.stats[route] += 1
        queue = self._queues.get(route)
        if not queue:
            return None
        step = queue.popleft()
        if not queue:
            del self._queues[route]
        return None if step is None else step.response()

    async def act(self, request: web.Request, reply: FaultReply) -> None:
        """Carry out a connection-level fault; the connection is gone when this returns."""
        if reply.fault.kind == "hang":
            release = self._release
            try:
                await release.wait()
            finally:
                _drop(request, reset=False)
            return
        _drop(request, reset=True)


def _drop(request: web.Request, *, reset: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if reset and sock is not None:
        # Linger on, timeout 0: close() sends RST instead of FIN, as a crashed peer would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
