"""A stale pooled keep-alive connection (reliability R5) against the real loopback server.

The server's ``reset`` fault drops the connection with a TCP reset before the route runs, which
is what a client sees when the server had closed an idle keep-alive connection: the request on
a *reused* connection dies before any response. AiohttpTransport sends it once more, whatever
the method; on a fresh connection, or a second time, the failure is the caller's to see.
"""

from __future__ import annotations

import json

import pytest

from appusers.adapters import AiohttpTransport
from appusers.errors import TransportError
from appusers.server import Fault, LocalServer
from appusers.transport import Request

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def urls(server: LocalServer) -> tuple[str, str]:
    app = f"{server.url}/api/client/v2.0/app/{server.app_id}"
    return f"{app}/location", f"{app}/auth/providers/anon-user/login"


def login(url: str) -> Request:
    return Request("POST", url, JSON, json.dumps({"options": {"device": {}}}).encode())


async def test_a_post_on_a_stale_pooled_connection_is_sent_once_more(server: LocalServer) -> None:
    location, login_url = urls(server)
    async with AiohttpTransport() as transport:
        assert (await transport.send(Request("GET", location))).status == 200  # a pooled connection
        server.inject_faults("login", [Fault.reset()])
        response = await transport.send(login(login_url))
        assert response.status == 200 and json.loads(response.body)["user_id"]
    assert server.stats["login"] == 2  # the reset attempt (never applied) and the one that counted


async def test_only_once_and_only_on_a_reused_connection(server: LocalServer) -> None:
    location, login_url = urls(server)
    async with AiohttpTransport() as fresh:
        server.inject_faults("login", [Fault.reset()])
        with pytest.raises(TransportError):
            await fresh.send(login(login_url))  # first request: a new connection, not a stale one
    assert server.stats["login"] == 1
    async with AiohttpTransport() as fresh:
        server.inject_faults("location", [Fault.reset()])
        with pytest.raises(TransportError):
            await fresh.send(Request("GET", location))  # idempotent too: the App's RetryPolicy decides
    assert server.stats["location"] == 1
    async with AiohttpTransport() as transport:
        assert (await transport.send(Request("GET", location))).status == 200
        server.inject_faults("login", [Fault.reset(), Fault.reset(), None])
        with pytest.raises(TransportError):
            await transport.send(login(login_url))
    assert server.stats["login"] == 3  # 1 above + the request and its one transparent retry
