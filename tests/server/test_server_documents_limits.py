"""The MongoDB service under hostile input, over real HTTP: 4xx bodies, time limits, bounded watch streams."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import attrs
import pytest
from _server_testkit import Api, assert_error, fast

from appusers.server import LocalServer, load_config
from appusers.server import _sse as sse

MONGO = "mongodb-atlas"
NS = {"database": "shop", "collection": "orders"}


def _nest(depth: int, make: Any, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = make(value)
    return value


@pytest.fixture
async def limited(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    config = fast(load_config(None))
    limits = attrs.evolve(
        config.limits,
        document_timeout=10.0,
        watch_buffer_bytes=32 * 1024,
        watch_streams_per_user=2,
        watch_streams=3,
    )
    async with LocalServer(config=attrs.evolve(config, limits=limits), data_dir=tmp_path / "d") as srv:
        yield Api(srv, http)


async def _token(api: Api, name: str = "caller") -> str:
    return str((await api.login("custom-function", username=name))["access_token"])


# Every one of these answered 500 before (RecursionError, ZeroDivisionError, OverflowError, store
# errors raised outside the handler's try); each is the caller's mistake, so a 4xx error body.
HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("find", {"query": _nest(450, lambda v: {"$and": [v]}, {"a": 1})}),  # 900 JSON levels
    ("find", {"query": _nest(900, lambda v: {"$or": v}, {"a": 1})}),
    ("find", {"query": {"$expr": _nest(400, lambda v: {"$not": [v]}, True)}}),
    ("find", {"query": {"a": _nest(400, lambda v: {"$not": v}, {"$eq": 1})}}),
    ("insertOne", {"document": _nest(900, lambda v: {"a": v}, 1)}),
    ("updateOne", {"query": {}, "update": {"$set": {".".join(["a"] * 900): 1}}, "upsert": True}),
    ("updateOne", {"query": {}, "update": {"$set": {".".join(["a"] * 5000): 1}}, "upsert": True}),
    ("aggregate", {"pipeline": [{"$project": {"x": {"$pow": [10, 100000]}}}]}),
    ("aggregate", {"pipeline": [{"$project": {"x": {"$divide": [1, 0]}}}]}),
    ("find", {"query": {"$expr": {"$gt": [{"$divide": ["$n", 0]}, 1]}}}),
    ("find", {"query": {"s": {"$regex": "(a)\\1"}}}),
    ("find", {"query": {"s": {"$regularExpression": {"pattern": "(?=x)", "options": ""}}}}),
    ("find", {"database": "a\x00", "query": {}}),
    ("find", {"database": "a.b", "query": {}}),
    ("insertOne", {"collection": "$cmd", "document": {}}),
    ("insertOne", {"collection": "system.users", "document": {}}),
    ("find", {"collection": "c" * 300, "query": {}}),
    ("insertOne", {"document": {"a": {"$numberLong": "1"}, "$bad": 1}}),
]


@pytest.mark.parametrize(("action", "arg"), HOSTILE, ids=[f"{a}-{i}" for i, (a, _) in enumerate(HOSTILE)])
async def test_hostile_mongodb_calls_get_4xx_error_bodies(api: Api, action: str, arg: dict[str, Any]) -> None:
    token = await _token(api)
    assert (await api.call(token, "insertOne", {**NS, "document": {"n": 1, "s": "x"}}, service=MONGO))[
        0
    ] == 200
    status, body = await api.call(token, action, {**NS, **arg}, service=MONGO)
    assert_error(status, body, 400, "MongoDBError")
    # Nothing was half-applied, and the service still answers.
    status, body = await api.call(token, "find", {**NS, "query": {}}, service=MONGO)
    assert status == 200 and len(body) == 1 and set(body[0]) == {"_id", "n", "s"}


async def test_catastrophic_regex_answers_at_once_and_location_stays_live(api: Api) -> None:
    token = await _token(api)
    doc = {"evil": "a" * 29 + "!"}  # 16 s of backtracking in Python's re, measured in issue 9
    assert (await api.call(token, "insertOne", {**NS, "document": doc}, service=MONGO))[0] == 200
    queries = [
        {"evil": {"$regex": "^(a+)+$"}},
        {"evil": {"$regularExpression": {"pattern": "^(a+)+$", "options": ""}}},
        {"evil": {"$in": [{"$regularExpression": {"pattern": "^(a+)+$", "options": "i"}}]}},
    ]
    calls = [api.call(token, "find", {**NS, "query": q}, service=MONGO) for q in queries]
    calls.append(
        api.call(
            token,
            "aggregate",
            {
                **NS,
                "pipeline": [{"$project": {"m": {"$regexMatch": {"input": "$evil", "regex": "^(a+)+$"}}}}],
            },
            service=MONGO,
        )
    )
    location = api.request("GET", f"{api.app}/location")
    *results, (loc_status, _h, _b) = await asyncio.gather(*calls, location)
    assert [r for r in results[:3]] == [(200, [])] * 3
    assert results[3][0] == 200 and results[3][1][0]["m"] is False
    assert loc_status == 200


async def test_slow_operation_gets_max_time_ms_expired(limited: Api) -> None:
    api = limited
    token = await _token(api)
    docs = [{"a": list(range(300))} for _ in range(100)]
    for _ in range(3):
        assert (await api.call(token, "insertMany", {**NS, "documents": docs}, service=MONGO))[0] == 200
    api.server._documents.time_limit = 0.5  # after the setup, which a loaded machine may make slow
    slow = {"a": {"$in": list(range(1000, 4000))}}
    status, body = await api.call(token, "find", {**NS, "query": slow}, service=MONGO)
    assert_error(status, body, 400, "MongoDBError", "(MaxTimeMSExpired) operation exceeded time limit")
    status, body = await api.call(
        token, "updateMany", {**NS, "query": slow, "update": {"$set": {"x": 1}}}, service=MONGO
    )
    assert_error(status, body, 400, "MongoDBError", "MaxTimeMSExpired")
    api.server._documents.time_limit = 10.0
    status, body = await api.call(token, "count", {**NS, "query": {"x": 1}}, service=MONGO)
    assert (status, body) == (200, {"$numberLong": "0"})


async def test_document_limit_over_http(api: Api) -> None:
    token = await _token(api)
    status, _ = await api.call(token, "insertOne", {**NS, "document": {"_id": 1, "arr": []}}, service=MONGO)
    assert status == 200
    push = {"$push": {"arr": {"$each": ["y" * 100_000] * 9}}}  # ~900 KB a request
    statuses = []
    for _ in range(20):
        status, body = await api.call(
            token, "updateOne", {**NS, "query": {"_id": 1}, "update": push}, service=MONGO
        )
        statuses.append(status)
        if status != 200:
            break
    # 18 pushes make 16.2 MB (under 16 MiB); the 19th would pass the limit and is refused whole.
    assert statuses == [200] * 18 + [400]
    assert_error(status, body, 400, "MongoDBError", "Resulting document after update is larger than 16777216")
    status, body = await api.call(
        token, "aggregate", {**NS, "pipeline": [{"$project": {"n": {"$size": "$arr"}}}]}, service=MONGO
    )
    assert status == 200 and body[0]["n"] == {"$numberInt": str(18 * 9)}


def _watch_url(api: Api, token: str) -> str:
    call = {"name": "watch", "service": MONGO, "arguments": [NS]}
    request = quote(base64.b64encode(json.dumps(call).encode()).decode(), safe="")
    return f"{api.app}/functions/call?baas_request={request}&baas_at={token}"


async def test_watch_stream_caps_per_user_and_server(limited: Api) -> None:
    api = limited
    alice, bob = await _token(api, "alice"), await _token(api, "bob")
    async with api.http.get(_watch_url(api, alice)) as a1, api.http.get(_watch_url(api, alice)) as a2:
        assert (a1.status, a2.status) == (200, 200)
        status, _h, body = await api.request("GET", _watch_url(api, alice))
        assert_error(status, body, 429, "TooManyRequests", "for this user (limit 2)")
        async with api.http.get(_watch_url(api, bob)) as b1:
            assert b1.status == 200
            status, _h, body = await api.request("GET", _watch_url(api, bob))
            assert_error(status, body, 429, "TooManyRequests", "on this server (limit 3)")
    # Closed streams give their slots back (the handlers end once they notice the close).
    for _ in range(100):
        if not api.server._server_app.streams:
            break
        await asyncio.sleep(0.02)
    async with api.http.get(_watch_url(api, bob)) as b2, api.http.get(_watch_url(api, bob)) as b3:
        assert (b2.status, b3.status) == (200, 200)


def _raw_watch(api: Api, token: str) -> socket.socket:
    """A socket that sends a watch request and then never reads (a tiny receive buffer)."""
    url = urlsplit(_watch_url(api, token))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((url.hostname, url.port))
    sock.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
    return sock


async def test_stalled_watcher_is_cut_and_a_leaving_client_is_one_info_line(
    limited: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = limited
    monkeypatch.setattr(sse, "FAIL_GRACE", 2.0)
    caplog.set_level(logging.INFO, logger="appusers")
    token = await _token(api)
    loop = asyncio.get_running_loop()
    stalled, slow = _raw_watch(api, token), _raw_watch(api, token)
    slow.setblocking(False)
    try:
        await asyncio.sleep(0.3)
        assert len(api.server._server_app.streams) == 2
        pad = "p" * 2000
        for i in range(0, 600, 50):  # ~1.2 MB of events: far past the 32 KiB buffer and socket buffers
            docs = [{"i": i + j, "pad": pad} for j in range(50)]
            status, _ = await api.call(token, "insertMany", {**NS, "documents": docs}, service=MONGO)
            assert status == 200
        # A slow reader that comes back in time reads what was sent, then the error event, then the
        # response's end (the last chunk: the connection itself stays open for keep-alive).
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = await asyncio.wait_for(loop.sock_recv(slow, 65536), 10)
            assert chunk, received[-300:]
            received += chunk
        assert b"event: error" in received and b"ChangeStreamHistoryLost" in received
        # The stalled one is cut after the grace period, freeing its slot and memory.
        for _ in range(200):
            if not api.server._server_app.streams:
                break
            await asyncio.sleep(0.05)
        assert not api.server._server_app.streams
    finally:
        stalled.close()
        slow.close()
    # A client that goes away is routine: INFO lines, never an error with a traceback.
    async with api.http.get(_watch_url(api, token)) as leaving:
        assert leaving.status == 200
    for _ in range(100):
        if any("the client went away" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("watch stream closed: its reader fell behind and did not take the error event") == 1
    assert messages.count("watch stream closed: the client went away") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], messages
