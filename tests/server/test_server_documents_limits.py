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

from appusers.server import LocalServer, ServerConfig, load_config
from appusers.server import _sse as sse
from appusers.server.rules import NamespaceRule, Role

MONGO = "mongodb-atlas"
NS = {"database": "shop", "collection": "orders"}
#: Every call of an application user goes through its rules (a RuledCollection); an open rule on
#: the namespace keeps these tests about the store's limits. The limits under a role that depends
#: on the document are tested in test_server_documents_rules.py.
OPEN_ORDERS = NamespaceRule(
    database="shop", collection="orders", roles=(Role(name="readAndWriteAll", read=True, write=True),)
)


def _open_config() -> ServerConfig:
    demo = fast(load_config(None))
    return attrs.evolve(demo, rules=(*demo.rules, OPEN_ORDERS))


@pytest.fixture
def config() -> ServerConfig:
    return _open_config()


def _nest(depth: int, make: Any, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = make(value)
    return value


@pytest.fixture
async def limited(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    config = _open_config()
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
# errors raised outside the handler's try); each is the caller's mistake, so a 4xx error body. The
# rules refuse $expr and regular expressions to application users before the store sees them
# (ArgumentsNotAllowed); the store's own answer to those is tested in tests/documents and, through a
# system function, in test_server_documents_rules.py.
REFUSED = "ArgumentsNotAllowed"


def _path(segments: int) -> str:
    return ".".join(["a"] * segments)


def _regex_match(pattern: str, field: str = "$s") -> dict[str, Any]:
    return {"$regexMatch": {"input": field, "regex": pattern}}

HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("find", {"query": _nest(450, lambda v: {"$and": [v]}, {"a": 1})}, "MongoDBError"),  # 900 JSON levels
    ("find", {"query": _nest(900, lambda v: {"$or": v}, {"a": 1})}, "MongoDBError"),
    ("find", {"query": {"$expr": _nest(400, lambda v: {"$not": [v]}, True)}}, REFUSED),
    ("find", {"query": {"a": _nest(400, lambda v: {"$not": v}, {"$eq": 1})}}, "MongoDBError"),
    ("insertOne", {"document": _nest(900, lambda v: {"a": v}, 1)}, "MongoDBError"),
    ("updateOne", {"query": {}, "update": {"$set": {_path(900): 1}}, "upsert": True}, "MongoDBError"),
    ("updateOne", {"query": {}, "update": {"$set": {_path(5000): 1}}, "upsert": True}, "MongoDBError"),
    ("aggregate", {"pipeline": [{"$project": {"x": {"$pow": [10, 100000]}}}]}, "MongoDBError"),
    ("aggregate", {"pipeline": [{"$project": {"x": {"$divide": [1, 0]}}}]}, "MongoDBError"),
    ("aggregate", {"pipeline": [{"$match": {"n": 1}}, {"$project": {"x": {"$ln": "$s"}}}]}, "MongoDBError"),
    ("aggregate", {"pipeline": [{"$project": {"m": _regex_match("(a)\\1")}}]}, "MongoDBError"),
    ("aggregate", {"pipeline": [{"$project": {"m": _regex_match("(?=x)")}}]}, "MongoDBError"),
    ("aggregate", {"pipeline": [_nest(300, lambda v: {"$and": [v]}, True)]}, "MongoDBError"),
    ("find", {"query": {"s": {"$regex": "(a)\\1"}}}, REFUSED),
    ("find", {"query": {"s": {"$regularExpression": {"pattern": "(?=x)", "options": ""}}}}, REFUSED),
    ("find", {"database": "a\x00", "query": {}}, "MongoDBError"),
    ("find", {"database": "a.b", "query": {}}, "MongoDBError"),
    ("insertOne", {"collection": "$cmd", "document": {}}, "MongoDBError"),
    ("insertOne", {"collection": "system.users", "document": {}}, "MongoDBError"),
    ("find", {"collection": "c" * 300, "query": {}}, "MongoDBError"),
    ("insertOne", {"document": {"a": {"$numberLong": "1"}, "$bad": 1}}, "MongoDBError"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("action", "arg", "code"), HOSTILE, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(HOSTILE)]
)
async def test_hostile_mongodb_calls_get_4xx_error_bodies(
    api: Api, action: str, arg: dict[str, Any], code: str
) -> None:
    token = await _token(api)
    assert (await api.call(token, "insertOne", {**NS, "document": {"n": 1, "s": "x"}}, service=MONGO))[
        0
    ] == 200
    status, body = await api.call(token, action, {**NS, **arg}, service=MONGO)
    assert_error(status, body, 400, code)
    # Nothing was half-applied, and the service still answers.
    status, body = await api.call(token, "find", {**NS, "query": {}}, service=MONGO)
    assert status == 200 and len(body) == 1 and set(body[0]) == {"_id", "n", "s"}


async def test_catastrophic_regex_answers_at_once_and_location_stays_live(api: Api) -> None:
    token = await _token(api)
    doc = {"evil": "a" * 29 + "!"}  # 16 s of backtracking in Python's re, measured in issue 9
    assert (await api.call(token, "insertOne", {**NS, "document": doc}, service=MONGO))[0] == 200
    evil = "^(a+)+$"
    # $regexMatch is open to application users; it runs on RE2 through the rules' pipeline too.
    calls = [
        api.call(
            token,
            "aggregate",
            {**NS, "pipeline": [{"$project": {"_id": 0, "m": _regex_match(evil, "$evil")}}]},
            service=MONGO,
        )
        for _ in range(3)
    ]
    # Query patterns are refused to application users by the rules, at once.
    calls.append(api.call(token, "find", {**NS, "query": {"evil": {"$regex": evil}}}, service=MONGO))
    location = api.request("GET", f"{api.app}/location")
    *results, (loc_status, _h, _b) = await asyncio.gather(*calls, location)
    assert results[:3] == [(200, [{"m": False}])] * 3
    assert_error(*results[3], 400, REFUSED, "a regular expression in 'query'")
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
