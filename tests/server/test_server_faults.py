"""Fault injection on the real loopback server: reply sequences with headers, connection resets,
hangs, a server stopped and started again at the same URL, and the HTTP hook (with hostile input)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from _server_testkit import Api

from appusers.server import Fault, LocalServer

ADMIN = {"X-Appusers-Admin": "admin-secret"}


async def raw_request(
    server: LocalServer, path: str, headers: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A GET written on a bare socket: what the server does to the connection is seen as is."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    await writer.drain()
    return reader, writer


async def raw_get(url: str, *, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection (no pooling, no client-side retry to hide what happened)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, dict(resp.headers), await resp.read()


async def test_a_sequence_of_replies_then_normal_service(api: Api, server: LocalServer) -> None:
    server.inject_faults("location", [
        Fault.reply(503, {"error": "busy", "error_code": "MaintenanceInProgress"},
                    headers={"Retry-After": "2"}),
        None,
        Fault.reply(502, raw=b"<html>bad gateway</html>", content_type="text/html"),
        Fault.reply(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    ])
    url = f"{api.app}/location"
    answers = [await raw_get(url) for _ in range(5)]
    assert [status for status, _h, _b in answers] == [503, 200, 502, 429, 200]
    assert answers[0][1]["Retry-After"] == "2" and b"MaintenanceInProgress" in answers[0][2]
    assert answers[2][1]["Content-Type"] == "text/html" and answers[2][2] == b"<html>bad gateway</html>"
    assert answers[3][1]["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT" and answers[3][2] == b""
    assert b'"hostname"' in answers[4][2]
    assert server.stats["location"] == 5


async def test_times_and_headers_on_inject_fault(api: Api, server: LocalServer) -> None:
    server.inject_fault("location", 503, None, times=3, headers={"Retry-After": "1"})
    statuses = [(await raw_get(f"{api.app}/location"))[0] for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    server.inject_fault("location", 500, None, times=2)
    server.inject_fault("location", 500, None, times=0)  # cancels what was queued
    assert (await raw_get(f"{api.app}/location"))[0] == 200


async def test_reset_drops_the_connection_without_a_byte(api: Api, server: LocalServer) -> None:
    server.inject_faults("location", [Fault.reset()])
    reader, writer = await raw_request(server, f"/api/client/v2.0/app/{server.app_id}/location")
    with pytest.raises(ConnectionResetError):
        await reader.read(1)  # a reset, not a clean close (that would return b"")
    writer.close()
    assert server.stats["location"] == 1
    assert (await raw_get(f"{api.app}/location"))[0] == 200  # one step, then normal


async def test_hang_holds_until_the_client_gives_up_then_release(api: Api, server: LocalServer) -> None:
    server.inject_faults("profile", [Fault.hang(), Fault.hang()])
    tokens = await api.login()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await http.get(f"{api.auth}/profile", headers=auth, timeout=aiohttp.ClientTimeout(total=0.2))
        assert time.monotonic() - started >= 0.2
    reader, writer = await raw_request(
        server, "/api/client/v2.0/auth/profile", f"Authorization: {auth['Authorization']}\r\n")
    while server.stats["profile"] < 2:
        await asyncio.sleep(0.01)
    pending = asyncio.ensure_future(reader.read())
    await asyncio.sleep(0.05)
    assert not pending.done()  # held
    server.release_faults()
    assert await pending == b""  # let go: closed without an answer
    writer.close()
    status, _h, _b = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
    assert status == 200


async def test_stop_refuses_and_start_serves_the_same_data_at_the_same_url(
    api: Api, server: LocalServer
) -> None:
    tokens = await api.login()
    url = server.url
    server.inject_faults("profile", [Fault.hang()])
    hanging = asyncio.ensure_future(api.request("GET", f"{api.auth}/profile", token=tokens["access_token"]))
    while server.stats["profile"] < 1:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 5  # a hanging request does not hold the shutdown
    with pytest.raises(aiohttp.ClientError):
        await hanging
    with pytest.raises(aiohttp.ClientConnectorError):
        await raw_get(f"{url}/api/client/v2.0/app/{server.app_id}/location")
    await server.start()
    assert server.url == url
    # Same store: the session made before the stop still refreshes.
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    assert status == 201 and body["access_token"]
    assert server.stats["profile"] == 0 and server.stats["refresh"] == 1  # counters start again


def test_fault_values_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        Fault.reply(99)
    with pytest.raises(ValueError):
        Fault.reply(200, {"a": 1}, raw=b"x")
    for bad in ([], "reset", {"status": "500"}, {"status": True}, {"status": 500, "body": []},
                {"status": 500, "headers": {"Retry-After": 5}}, {"reset": "yes", "status": None}):
        with pytest.raises(ValueError):
            Fault.from_json(bad)
    assert Fault.from_json(None) is None
    assert Fault.from_json({"hang": True}) == Fault.hang()


async def test_unknown_routes_and_bad_steps_are_refused(server: LocalServer) -> None:
    with pytest.raises(ValueError):
        server.inject_faults("nope", [Fault.reset()])
    with pytest.raises(TypeError):
        server.inject_faults("login", ["reset"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        server.inject_faults("login", [None] * 10_001)


async def test_http_hook_sequences_and_release(api: Api, server: LocalServer) -> None:
    base = f"{server.url}/_appusers/admin/fault"
    status, _h, _b = await api.request("POST", base, headers=ADMIN, body={
        "route": "location",
        "sequence": [{"status": 503, "headers": {"Retry-After": "1"}}, None, {"reset": True}, {"hang": True}],
    })
    assert status == 204
    first = await raw_get(f"{api.app}/location")
    assert first[0] == 503 and first[1]["Retry-After"] == "1"
    assert (await raw_get(f"{api.app}/location"))[0] == 200
    location = f"/api/client/v2.0/app/{server.app_id}/location"
    reader, writer = await raw_request(server, location)
    with pytest.raises(ConnectionResetError):
        await reader.read(1)
    writer.close()
    reader, writer = await raw_request(server, location)
    while server.stats["location"] < 4:
        await asyncio.sleep(0.01)
    status, _h, _b = await api.request("POST", f"{base}/release", headers=ADMIN)
    assert status == 204
    assert await reader.read() == b""
    writer.close()
    status, _h, _b = await api.request("POST", base, headers=ADMIN, body={
        "route": "profile", "status": 503, "times": 2, "headers": {"Retry-After": "3"}})
    assert status == 204
    tokens = await api.login()
    status, headers, _b = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
    assert status == 503 and headers["Retry-After"] == "3"


@pytest.mark.parametrize("body", [
    {"route": "location", "sequence": "503"},
    {"route": "location", "sequence": [{"status": "503"}]},
    {"route": "location", "sequence": [{"status": 503, "headers": ["Retry-After", "1"]}]},
    {"route": "location", "sequence": [{"status": 503, "body": "down"}]},
    {"route": "location", "sequence": [7]},
    {"route": "location", "sequence": [None] * 10_001},
    {"route": "nowhere", "sequence": []},
    {"route": "location", "status": 503, "times": -1},
    {"route": "location", "status": 503, "times": 10_001},
    {"route": "location", "status": True},
    {"route": "location", "status": 503, "headers": {"Retry-After": 1}},
])
async def test_http_hook_rejects_hostile_bodies(
    api: Api, server: LocalServer, body: dict[str, object]
) -> None:
    url = f"{server.url}/_appusers/admin/fault"
    status, _h, reply = await api.request("POST", url, headers=ADMIN, body=body)
    assert status == 400 and reply["error_code"] == "InvalidParameter"
    assert (await raw_get(f"{api.app}/location"))[0] == 200  # nothing was queued


async def test_http_hook_needs_the_admin_token(api: Api, server: LocalServer) -> None:
    for headers in ({}, {"X-Appusers-Admin": "wrong"}):
        url = f"{server.url}/_appusers/admin/fault/release"
        status, _h, _b = await api.request("POST", url, headers=headers)
        assert status == 403
        status, _h, _b = await api.request("POST", f"{server.url}/_appusers/admin/fault", headers=headers,
                                           body={"route": "location", "sequence": [{"reset": True}]})
        assert status == 403
    assert (await raw_get(f"{api.app}/location"))[0] == 200
