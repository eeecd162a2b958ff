"""The document store's limits hold through the access rules: HTTP calls, watch and ``context.services``.

Every call of an application user reaches the store through a ``RuledCollection``
(the rules' dry run, the readable-documents read, the rules' own pipeline), and
functions reach it through ``context.services``. These run under the demo rules'
owner role (``owner_id`` = ``%%user.id``), so the rules really decide per
document, and check that the time limit, RE2, the 16 MiB limit and the watch
buffer still apply on those paths.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import attrs
import pytest
from _server_testkit import Api, assert_error, fast

from appusers.server import FunctionSettings, LocalServer, load_config

MONGO = "mongodb-atlas"
DB, COLL = "shop", "owned"
NS = {"database": DB, "collection": COLL}
SLOW = {"a": {"$in": list(range(1000, 4000))}}  # ~1 s over the seeded documents on an idle machine
EVIL = "^(a+)+$"

FUNCTIONS = f"""
NS = ({DB!r}, {COLL!r})

def _coll(context):
    return context.services.get({MONGO!r}).db(NS[0]).collection(NS[1])

async def ruled_find(context, query):
    return len(await _coll(context).find(query))

async def ruled_aggregate(context, pipeline):
    return await _coll(context).aggregate(pipeline)

async def ruled_push(context, n):
    push = {{"$push": {{"arr": {{"$each": ["y" * 100_000] * n}}}}}}
    return (await _coll(context).update_one({{"_id": 1}}, push)).modified_count

async def ruled_insert_big(context):
    await _coll(context).insert_one({{"owner_id": context.user.id, "big": "y" * 17_000_000}})

async def system_regex(context):
    return await _coll(context).find({{"evil": {{"$regex": {EVIL!r}}}}}, projection={{"_id": 0}})
"""


@pytest.fixture
async def api(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    module = tmp_path / "limits_functions.py"
    module.write_text(FUNCTIONS)
    config = fast(load_config(None))  # the demo rules: the owner role for every other namespace
    config = attrs.evolve(
        config,
        functions_module=module,
        function_settings=(FunctionSettings(name="system_regex", run_as_system=True),),
        limits=attrs.evolve(config.limits, watch_buffer_bytes=32 * 1024),
    )
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        yield Api(srv, http)


async def _login(api: Api) -> tuple[str, str]:
    body = await api.login()  # a new anonymous user each time
    return str(body["access_token"]), str(body["user_id"])


async def _seed_slow(api: Api, owner: str) -> None:
    """Documents the slow query takes about a second over; the owner may read them."""
    docs = [{"owner_id": owner, "a": list(range(300))} for _ in range(300)]
    await api.server._documents.collection(DB, COLL).insert_many(docs)


async def test_time_limit_applies_to_ruled_reads_writes_and_the_rules_pipeline(api: Api) -> None:
    token, uid = await _login(api)
    await _seed_slow(api, uid)
    api.server._documents.time_limit = 0.3  # after the setup, which a loaded machine may make slow
    status, body = await api.call(token, "find", {**NS, "query": SLOW}, service=MONGO)
    assert_error(status, body, 400, "MongoDBError", "(MaxTimeMSExpired) operation exceeded time limit")
    # A ruled write: the dry run that computes the images for the rules runs under the limit too.
    status, body = await api.call(
        token, "updateMany", {**NS, "query": SLOW, "update": {"$set": {"x": 1}}}, service=MONGO
    )
    assert_error(status, body, 400, "MongoDBError", "MaxTimeMSExpired")
    # The rules run a user's pipeline themselves, over the readable documents: on the store's worker.
    status, body = await api.call(token, "aggregate", {**NS, "pipeline": [{"$match": SLOW}]}, service=MONGO)
    assert_error(status, body, 400, "MongoDBError", "MaxTimeMSExpired")
    # The same through context.services in a function called by the owner.
    status, body = await api.call(token, "ruled_find", SLOW)
    assert_error(status, body, 400, "FunctionExecutionError", "MaxTimeMSExpired")
    status, body = await api.call(token, "ruled_aggregate", [{"$match": SLOW}])
    assert_error(status, body, 400, "FunctionExecutionError", "MaxTimeMSExpired")
    api.server._documents.time_limit = 10.0
    status, body = await api.call(token, "count", {**NS, "query": {"x": 1}}, service=MONGO)
    assert (status, body) == (200, {"$numberLong": "0"})
    # The rules still decide: another user sees none of the owner's documents.
    other, _ = await _login(api)
    status, body = await api.call(other, "count", {**NS, "query": {}}, service=MONGO)
    assert (status, body) == (200, {"$numberLong": "0"})


async def test_regex_runs_on_re2_through_the_rules_and_in_a_system_function(api: Api) -> None:
    token, uid = await _login(api)
    doc = {"owner_id": uid, "evil": "a" * 29 + "!"}  # 16 s of backtracking in Python's re
    assert (await api.call(token, "insertOne", {**NS, "document": doc}, service=MONGO))[0] == 200
    match = {"$project": {"_id": 0, "m": {"$regexMatch": {"input": "$evil", "regex": EVIL}}}}
    calls = [
        api.call(token, "aggregate", {**NS, "pipeline": [match]}, service=MONGO),
        api.call(token, "ruled_aggregate", [match]),
        # A system function bypasses the rules (which refuse $regex to users): the store answers.
        api.call(token, "system_regex"),
        api.call(token, "find", {**NS, "query": {"evil": {"$regex": EVIL}}}, service=MONGO),
    ]
    location = api.request("GET", f"{api.app}/location")
    *results, (loc_status, _h, _b) = await asyncio.gather(*calls, location)
    assert results[:3] == [(200, [{"m": False}]), (200, [{"m": False}]), (200, [])]
    assert_error(*results[3], 400, "ArgumentsNotAllowed", "a regular expression in 'query'")
    assert loc_status == 200


async def test_document_limit_applies_to_ruled_updates_and_function_inserts(api: Api) -> None:
    token, uid = await _login(api)
    # 160 strings of 100 KB: 16.0 MB, just under 16 MiB; stored directly (a request body is capped at 4 MiB).
    await api.server._documents.collection(DB, COLL).insert_one(
        {"_id": 1, "owner_id": uid, "arr": ["y" * 100_000] * 160}
    )
    push = {"$push": {"arr": {"$each": ["y" * 100_000] * 9}}}
    update = {**NS, "query": {"_id": 1}, "update": push}
    status, body = await api.call(token, "updateOne", update, service=MONGO)
    assert_error(status, body, 400, "MongoDBError", "Resulting document after update is larger than 16777216")
    status, body = await api.call(token, "ruled_push", 9)
    assert_error(status, body, 400, "FunctionExecutionError", "larger than 16777216")
    status, body = await api.call(token, "ruled_insert_big")
    assert_error(status, body, 400, "FunctionExecutionError", "object to insert too large")
    # Nothing was half-applied; a push that fits still goes through the rules.
    assert await api.call(token, "ruled_push", 1) == (200, {"$numberInt": "1"})
    pipeline = [{"$project": {"_id": 0, "n": {"$size": "$arr"}}}]
    assert await api.call(token, "aggregate", {**NS, "pipeline": pipeline}, service=MONGO) == (
        200,
        [{"n": {"$numberInt": "161"}}],
    )
    assert await api.call(token, "count", {**NS, "query": {"big": {"$exists": True}}}, service=MONGO) == (
        200,
        {"$numberLong": "0"},
    )


def _raw_watch(api: Api, token: str) -> socket.socket:
    """A socket that sends a watch request and reads only when told (a tiny receive buffer)."""
    call = {"name": "watch", "service": MONGO, "arguments": [NS]}
    request = quote(base64.b64encode(json.dumps(call).encode()).decode(), safe="")
    url = urlsplit(f"{api.app}/functions/call?baas_request={request}&baas_at={token}")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((url.hostname, url.port))
    sock.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
    sock.setblocking(False)
    return sock


async def test_a_watch_through_the_rules_is_bounded(api: Api) -> None:
    token, uid = await _login(api)
    loop = asyncio.get_running_loop()
    slow = _raw_watch(api, token)
    try:
        for _ in range(100):
            if api.server._server_app.streams:
                break
            await asyncio.sleep(0.02)
        assert len(api.server._server_app.streams) == 1
        pad = "p" * 2000
        for i in range(0, 600, 50):  # ~1.2 MB of readable events, with pre-images for the rules
            docs = [{"owner_id": uid, "i": i + j, "pad": pad} for j in range(50)]
            status, _ = await api.call(token, "insertMany", {**NS, "documents": docs}, service=MONGO)
            assert status == 200
        status, _ = await api.call(
            token, "updateMany", {**NS, "query": {}, "update": {"$set": {"pad": "q"}}}, service=MONGO
        )
        assert status == 200
        # The reader comes back: what was sent, then the error event (the 32 KiB buffer overflowed),
        # then the end of the response.
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = await asyncio.wait_for(loop.sock_recv(slow, 65536), 10)
            assert chunk, received[-300:]
            received += chunk
        assert b"event: error" in received and b"ChangeStreamHistoryLost" in received
        assert b"fullDocumentBeforeChange" not in received  # the rules' pre-images never leave
        for _ in range(200):
            if not api.server._server_app.streams:
                break
            await asyncio.sleep(0.05)
        assert not api.server._server_app.streams
    finally:
        slow.close()
