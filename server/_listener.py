"""The HTTP listener's guard against slow, flooding and malformed clients (reliability.md S20).

aiohttp has no header read timeout: a client that sends half a request line holds its socket
(and a descriptor) for as long as it likes; 2,000 of them held 2,014 descriptors for 100 s+.
:class:`GuardedHandler` adds, per connection:

* a read deadline: a connection must deliver a complete request head within ``read_timeout``
  seconds of connecting, and an open keep-alive connection must deliver one (or be serving one)
  in every following period of ``read_timeout``, else it is closed. A half-sent request is
  therefore dropped ``read_timeout`` after it starts on a new connection and within twice that
  on a kept-alive one; request bodies have their own ``read_timeout`` where they are read.
* a cap on open connections per client address (``max_connections_per_address``): further
  connections from that address are closed on arrival.
* App Services error bodies for requests aiohttp cannot parse (oversized or malformed request
  lines and headers), logged by exception type only: aiohttp's own handler logged the exception
  text, which quotes the first 100 bytes of the offending line, i.e. of a bearer token.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ._config import HttpSettings
from ._errors import ApiError
from ._http import error_response

__all__ = ["GuardedHandler", "GuardedSite", "Limits"]

log = logging.getLogger("appusers.server")


class Limits:
    """Settings plus the open-connection count per address, shared by all connections."""

    def __init__(self, settings: HttpSettings):
        self.settings = settings
        self.open: collections.Counter[str] = collections.Counter()
        self.refused = 0
        self.timed_out = 0


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol with a read deadline and a per-address cap."""

    def __init__(self, manager: web.Server, *, limits: Limits, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._peer: str | None = None
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None
        self._seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        cap = self._limits.settings.max_connections_per_address
        if cap > 0 and self._limits.open[address] >= cap:
            self._refused = True
            self._limits.refused += 1
            transport.close()
            return
        self._peer = address
        self._limits.open[address] += 1
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._peer is not None:
            self._limits.open[self._peer] -= 1
            if self._limits.open[self._peer] <= 0:
                del self._limits.open[self._peer]
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def _arm(self) -> None:
        self._seen = self._request_count
        self._deadline = asyncio.get_running_loop().call_later(
            self._limits.settings.read_timeout, self._expire
        )

    def _expire(self) -> None:
        self._deadline = None
        busy = self._current_request is not None or bool(self._messages)
        if busy or self._request_count != self._seen:
            self._arm()  # progress since the last check: look again one period later
            return
        if self.transport is not None:
            self._limits.timed_out += 1
            log.debug("closing a connection from %s: no complete request within the read timeout", self._peer)
            self.force_close()  # closes the transport

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Never log ``exc`` or ``message``: they quote the bytes that could not be parsed.
        log.info("refused an unparsable request from %s (%s)", self._peer, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        if status >= 500:
            err = ApiError(500, "InternalServerError", "internal server error")
        elif "too long" in str(exc).lower() or "got more than" in str(exc).lower():
            err = ApiError(status, "BadRequest", "request line or header too large")
        else:
            err = ApiError(status, "BadRequest", "malformed HTTP request")
        resp = error_response(err)
        resp.headers["Cache-Control"] = "no-store"
        resp.force_close()
        return resp


class GuardedSite(web.TCPSite):
    """A TCP site whose connections are :class:`GuardedHandler`\\ s."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, limits: Limits, *, reuse_port: bool = False
    ):
        super().__init__(runner, host, port)
        self._limits = limits
        self._reuse = reuse_port

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        kwargs: dict[str, Any] = dict(server._kwargs)  # the runner's handler options

        def factory() -> GuardedHandler:
            return GuardedHandler(server, loop=loop, limits=self._limits, **kwargs)

        self._server = await loop.create_server(
            factory, self._host, self._port, backlog=self._backlog, reuse_port=self._reuse or None
        )
