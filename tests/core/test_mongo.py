"""The remote MongoDB surface (``user.mongo_client``) end to end against the local server,
plus the Server-Sent Events parser and the streaming error paths through MockTransport."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import pytest
from bson import Binary, Decimal128, Int64, ObjectId, json_util

import appusers
from appusers import (
    App,
    ChangeEvent,
    Credentials,
    DeleteResult,
    InsertManyResult,
    InsertOneResult,
    MongoCollection,
    UpdateResult,
)
from appusers._sse import SseEvent, SseParser, unescape_data
from appusers.adapters import AiohttpTransport, MockTransport
from appusers.errors import (
    AppClosedError,
    BadRequestError,
    HTTPStatusError,
    InvalidArgumentError,
    InvalidSessionError,
    MalformedJsonError,
    MongoDBError,
    RequestTimeoutError,
    ResponseError,
    ServiceError,
    ServiceNotFoundError,
    UserNotLoggedInError,
)
from appusers.server import ServerConfig
from appusers.server.rules import NamespaceRule, Role
from appusers.transport import Request, Response, StreamingTransport, StreamResponse, Transport

from ._helpers import HookTransport

TIMEOUT = 5.0


class RecordingTransport:
    """A real streaming transport that records requests and counts the streams it holds open."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[Request] = []
        self.opened = 0
        self.open_now = 0

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        return await self.inner.send(request)

    @contextlib.asynccontextmanager
    async def open_stream(
        self, request: Request, *, idle_timeout: float | None = None
    ) -> AsyncIterator[StreamResponse]:
        self.requests.append(request)
        async with self.inner.open_stream(request, idle_timeout=idle_timeout) as stream:
            self.opened += 1
            self.open_now += 1
            try:
                yield stream
            finally:
                self.open_now -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (polled: it watches state no event announces)."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.005)


def server_streams(server: Any) -> int:
    """Change streams the server is serving right now."""
    return len(server._server_app.streams)


def call_body(request: Request) -> dict[str, Any]:
    """The JSON of a request body, EJSON wrappers left as they are."""
    assert request.body is not None
    return json.loads(request.body)


def call_values(request: Request) -> dict[str, Any]:
    """A request body decoded as EJSON: the typed values the server will see."""
    assert request.body is not None
    return json_util.loads(request.body)


#: These tests cover the SDK's MongoDB surface, not rules: the server gives their one namespace
#: an explicit, permissive rule (the demo rules would want an owner_id in every document).
#: Rules are tested in tests/rules and tests/e2e/test_rules.py.
OPEN_ORDERS = NamespaceRule(
    database="shop", collection="orders", roles=(Role(name="readAndWriteAll", read=True, write=True),)
)


@pytest.fixture
def appusers_config(appusers_config: ServerConfig) -> ServerConfig:
    """The suite's server settings (appusers.testing's), plus the open rule for shop.orders."""
    return attrs.evolve(appusers_config, rules=(*appusers_config.rules, OPEN_ORDERS))


@pytest.fixture
async def transport() -> AsyncIterator[RecordingTransport]:
    recorder = RecordingTransport(AiohttpTransport())
    yield recorder
    await recorder.aclose()


@pytest.fixture
async def user(transport, make_app):
    app = await make_app(transport=transport)
    return await app.log_in(Credentials.anonymous())


@pytest.fixture
def orders(user) -> MongoCollection:
    return user.mongo_client("mongodb-atlas").db("shop").collection("orders")


# -- CRUD ------------------------------------------------------------------------------------


async def test_insert_find_count_with_projection_sort_limit(orders):
    one = await orders.insert_one({"sku": "a", "qty": 5, "status": "open"})
    assert isinstance(one, InsertOneResult) and isinstance(one.inserted_id, ObjectId)
    many = await orders.insert_many(
        [
            {"_id": 1, "sku": "b", "qty": 1, "status": "open"},
            {"_id": 2, "sku": "c", "qty": 9, "status": "closed"},
            {"_id": 3, "sku": "d", "qty": 3, "status": "open"},
        ]
    )
    assert many == InsertManyResult((1, 2, 3))

    assert len(await orders.find()) == 4
    found = await orders.find({"status": "open"}, projection={"sku": 1, "_id": 0}, sort={"qty": -1}, limit=2)
    assert found == [{"sku": "a"}, {"sku": "d"}]
    assert await orders.find({"qty": {"$gt": 100}}) == []

    assert await orders.find_one({"status": "open"}, sort={"qty": 1}, projection={"qty": 1}) == {
        "_id": 1,
        "qty": 1,
    }
    assert await orders.find_one({"sku": "nope"}) is None

    assert await orders.count() == 4
    assert await orders.count({"status": "open"}) == 3
    assert await orders.count({"status": "open"}, limit=2) == 2
    assert type(await orders.count()) is int


async def test_update_one_many_upsert_and_array_filters(orders):
    await orders.insert_many([{"_id": i, "n": i, "tags": [1, 5, 9]} for i in range(3)])

    assert await orders.update_one({"n": {"$gte": 1}}, {"$set": {"seen": True}}) == UpdateResult(1, 1, None)
    assert await orders.update_many({}, {"$inc": {"n": 10}}) == UpdateResult(3, 3, None)
    assert await orders.update_one({"_id": 0}, {"$set": {"n": 10}}) == UpdateResult(1, 0, None)
    assert await orders.update_many({"n": -1}, {"$set": {"x": 1}}) == UpdateResult(0, 0, None)

    upserted = await orders.update_one({"_id": "new"}, {"$set": {"n": 99}}, upsert=True)
    assert upserted == UpdateResult(0, 0, "new")
    assert await orders.find_one({"_id": "new"}) == {"_id": "new", "n": 99}
    generated = await orders.update_many({"sku": "z"}, {"$set": {"n": 1}}, upsert=True)
    assert isinstance(generated.upserted_id, ObjectId)

    changed = await orders.update_one(
        {"_id": 1}, {"$set": {"tags.$[big]": 0}}, array_filters=[{"big": {"$gt": 4}}]
    )
    assert changed.modified_count == 1
    assert (await orders.find_one({"_id": 1}))["tags"] == [1, 0, 0]



async def test_delete_one_and_many(orders):
    await orders.insert_many([{"k": "a"}, {"k": "a"}, {"k": "b"}, {"k": "c"}])
    assert await orders.delete_one({"k": "a"}) == DeleteResult(1)
    assert await orders.delete_one({"k": "zzz"}) == DeleteResult(0)
    assert await orders.delete_many({"k": {"$in": ["a", "b"]}}) == DeleteResult(2)
    assert await orders.delete_many({}) == DeleteResult(1)
    assert await orders.count() == 0


async def test_aggregate(orders):
    await orders.insert_many(
        [{"cat": "x", "v": 1}, {"cat": "x", "v": 2}, {"cat": "y", "v": 10}, {"cat": "z", "v": 0}]
    )
    result = await orders.aggregate(
        [
            {"$match": {"v": {"$gt": 0}}},
            {"$group": {"_id": "$cat", "total": {"$sum": "$v"}}},
            {"$sort": {"total": -1}},
        ]
    )
    assert result == [{"_id": "y", "total": 10}, {"_id": "x", "total": 3}]
    assert await orders.aggregate([]) == await orders.find()


async def test_find_one_and_update_replace_delete_pre_and_post_images(orders):
    await orders.insert_many([{"_id": 1, "n": 1, "s": "a"}, {"_id": 2, "n": 2, "s": "a"}])

    before = await orders.find_one_and_update({"s": "a"}, {"$inc": {"n": 10}}, sort={"n": -1})
    assert before == {"_id": 2, "n": 2, "s": "a"}  # the pre-image, of the first in sort order
    after = await orders.find_one_and_update(
        {"_id": 2}, {"$inc": {"n": 1}}, projection={"n": 1, "_id": 0}, return_new_document=True
    )
    assert after == {"n": 13}
    assert await orders.find_one_and_update({"_id": 9}, {"$set": {"n": 0}}) is None
    assert await orders.find_one_and_update({"_id": 9}, {"$set": {"n": 0}}, upsert=True) is None
    assert await orders.find_one_and_update(
        {"_id": 10}, {"$set": {"n": 5}}, upsert=True, return_new_document=True
    ) == {"_id": 10, "n": 5}

    replaced = await orders.find_one_and_replace({"_id": 1}, {"fresh": True})
    assert replaced == {"_id": 1, "n": 1, "s": "a"}
    assert await orders.find_one({"_id": 1}) == {"_id": 1, "fresh": True}  # _id kept
    new = await orders.find_one_and_replace({"_id": 1}, {"fresher": 1}, return_new_document=True)
    assert new == {"_id": 1, "fresher": 1}
    assert await orders.find_one_and_replace({"_id": 77}, {"x": 1}) is None
    made = await orders.find_one_and_replace({"_id": 77}, {"x": 1}, upsert=True, return_new_document=True)
    assert made == {"_id": 77, "x": 1}

    deleted = await orders.find_one_and_delete({}, sort={"_id": -1}, projection={"_id": 1})
    assert deleted == {"_id": 77}
    assert await orders.find_one_and_delete({"_id": 77}) is None
    assert await orders.count() == 4


async def test_ejson_types_round_trip(orders):
    when = datetime.datetime(2024, 1, 31, 12, 30, 15, 123000, tzinfo=datetime.UTC)
    document = {
        "_id": ObjectId(),
        "when": when,
        "price": Decimal128("12.3400"),
        "big": Int64(2**40),
        "small": Int64(7),
        "i32": 7,
        "f": 2.5,
        "blob": Binary(b"\x00\x01raw", 0x80),
        "bytes": b"plain bytes",
        "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "nested": {"list": [ObjectId(), Decimal128("-0.5"), None, True]},
    }
    result = await orders.insert_one(document)
    assert result.inserted_id == document["_id"] and type(result.inserted_id) is ObjectId

    back = await orders.find_one({"_id": document["_id"]})
    assert back == document
    for key in ("when", "price", "big", "small", "i32", "f", "blob", "bytes", "uid"):
        assert type(back[key]) is type(document[key]), key
    assert back["when"].tzinfo is not None

    # The typed values also work as query values, and arrive typed on the wire.
    assert await orders.count({"when": when, "price": Decimal128("12.3400"), "uid": document["uid"]}) == 1
    assert await orders.count({"big": {"$gt": Int64(2**39)}}) == 1
    sent = call_body(orders.user.app._transport.requests[-1])
    assert sent["arguments"][0]["query"]["big"]["$gt"] == {"$numberLong": str(2**39)}


async def test_wire_shapes_follow_the_protocol(orders, transport):
    def last() -> dict[str, Any]:
        return call_values(transport.requests[-1])

    await orders.find()
    assert last() == {
        "name": "find",
        "arguments": [{"database": "shop", "collection": "orders", "query": {}}],
        "service": "mongodb-atlas",
    }
    await orders.find({"a": 1}, projection={"a": 1}, sort={"a": -1}, limit=20)
    assert last()["arguments"][0] == {
        "database": "shop",
        "collection": "orders",
        "query": {"a": 1},
        "project": {"a": 1},
        "sort": {"a": -1},
        "limit": 20,
    }
    assert type(last()["arguments"][0]["limit"]) is int
    await orders.find_one(projection={"a": 1})
    assert set(last()["arguments"][0]) == {"database", "collection", "query", "project"}
    await orders.count()
    assert set(last()["arguments"][0]) == {"database", "collection", "query"}
    await orders.update_one({}, {"$set": {"a": 1}})
    assert set(last()["arguments"][0]) == {"database", "collection", "query", "update"}
    await orders.insert_one({"t": [1, 2]})
    await orders.update_many({}, {"$set": {"t.$[x]": 0}}, upsert=True, array_filters=[{"x": 1}])
    assert last()["arguments"][0]["upsert"] is True and last()["arguments"][0]["arrayFilters"]
    # A pipeline update goes as a list of stages (the embedded store may not run it).
    with contextlib.suppress(MongoDBError):
        await orders.update_one({}, [{"$set": {"b": "$a"}}])
    assert last()["arguments"][0]["update"] == [{"$set": {"b": "$a"}}]
    await orders.find_one_and_update({}, {"$set": {"a": 1}}, projection={"a": 1}, return_new_document=True)
    assert last()["name"] == "findOneAndUpdate"
    assert set(last()["arguments"][0]) == {
        "database", "collection", "filter", "update", "projection", "returnNewDocument"
    }
    await orders.find_one_and_replace({}, {"a": 1})
    assert set(last()["arguments"][0]) == {"database", "collection", "filter", "update"}
    await orders.find_one_and_delete({}, sort={"a": 1})
    assert last()["name"] == "findOneAndDelete"
    assert set(last()["arguments"][0]) == {"database", "collection", "filter", "sort"}
    await orders.aggregate([{"$match": {}}])
    assert set(last()["arguments"][0]) == {"database", "collection", "pipeline"}
    await orders.delete_many({})
    assert last()["name"] == "deleteMany" and set(last()["arguments"][0]) == {
        "database", "collection", "query"
    }


async def test_server_errors_are_typed(user, orders):
    await orders.insert_one({"_id": 1})
    with pytest.raises(MongoDBError):
        await orders.insert_one({"_id": 1})  # duplicate key
    with pytest.raises(ServiceNotFoundError):
        await user.mongo_client("no-such-service").db("d").collection("c").find()
    with pytest.raises(ServiceNotFoundError):
        async with user.mongo_client("no-such-service").db("d").collection("c").watch():
            pass


# -- bad input: typed error, nothing sent --------------------------------------------------

BAD_CALLS: list[tuple[str, Callable[[MongoCollection], Any]]] = [
    ("find filter", lambda c: c.find([("a", 1)])),
    ("find projection", lambda c: c.find(projection="a")),
    ("find sort", lambda c: c.find(sort=[("a", 1)])),
    ("find limit", lambda c: c.find(limit=-1)),
    ("find limit bool", lambda c: c.find(limit=True)),
    ("find timeout", lambda c: c.find(timeout=0)),
    ("find_one filter", lambda c: c.find_one("a")),
    ("find_one sort", lambda c: c.find_one(sort=1)),
    ("count filter", lambda c: c.count(1)),
    ("count limit", lambda c: c.count(limit=-5)),
    ("aggregate not a list", lambda c: c.aggregate({"$match": {}})),
    ("aggregate stage", lambda c: c.aggregate([1])),
    ("aggregate str", lambda c: c.aggregate("[]")),
    ("insert_one list", lambda c: c.insert_one([("a", 1)])),
    ("insert_one unencodable", lambda c: c.insert_one({"s": object()})),
    ("insert_many mapping", lambda c: c.insert_many({"a": 1})),
    ("insert_many empty", lambda c: c.insert_many([])),
    ("insert_many item", lambda c: c.insert_many([{"a": 1}, 2])),
    ("update_one filter", lambda c: c.update_one(None, {"$set": {"a": 1}})),
    ("update_one no operator", lambda c: c.update_one({}, {"a": 1})),
    ("update_one upsert", lambda c: c.update_one({}, {"$set": {"a": 1}}, upsert="yes")),
    ("update_one array_filters", lambda c: c.update_one({}, {"$set": {"a": 1}}, array_filters={})),
    ("update_many update", lambda c: c.update_many({}, "x")),
    ("update_many empty pipeline", lambda c: c.update_many({}, [])),
    ("delete_one filter", lambda c: c.delete_one(None)),
    ("delete_many filter", lambda c: c.delete_many("all")),
    ("find_one_and_update update", lambda c: c.find_one_and_update({}, {})),
    ("find_one_and_update flag", lambda c: c.find_one_and_update({}, {"$set": {}}, return_new_document=1)),
    ("find_one_and_replace operators", lambda c: c.find_one_and_replace({}, {"$set": {"a": 1}})),
    ("find_one_and_replace filter", lambda c: c.find_one_and_replace([], {"a": 1})),
    ("find_one_and_delete filter", lambda c: c.find_one_and_delete(None)),
    ("find_one_and_delete projection", lambda c: c.find_one_and_delete({}, projection=["a"])),
    ("watch ids and filter", lambda c: c.watch(ids=[1], filter={})),
    ("watch ids str", lambda c: c.watch(ids="abc")),
    ("watch filter", lambda c: c.watch(filter=[("a", 1)])),
    ("watch idle_timeout", lambda c: c.watch(idle_timeout=-1)),
    ("watch unencodable ids", lambda c: c.watch(ids=[object()])),
    ("watch_changes unencodable filter", lambda c: c.watch_changes(filter={"a": object()})),
    ("watch_changes ids and filter", lambda c: c.watch_changes(ids=[1], filter={})),
    ("watch_changes timeout", lambda c: c.watch_changes(timeout=float("nan"))),
    ("empty database", lambda c: c.user.mongo_client("mongodb-atlas").db("")),
    ("dotted database", lambda c: c.user.mongo_client("mongodb-atlas").db("a.b")),
    ("empty collection", lambda c: c.database.collection("")),
    ("collection not str", lambda c: c.database.collection(5)),
    ("collection with $", lambda c: c.database.collection("a$b")),
    ("service not str", lambda c: c.user.mongo_client(None)),
    ("empty service", lambda c: c.user.mongo_client("")),
]


async def test_bad_input_is_rejected_before_any_request(make_app):
    """One server for every case (each would otherwise start its own); failures are named."""

    async def passthrough(request: Request) -> None:
        return None

    counter = HookTransport(AiohttpTransport(), passthrough)
    try:
        app = await make_app(transport=counter)
        user = await app.log_in(Credentials.anonymous())
        collection = user.mongo_client("mongodb-atlas").db("shop").collection("orders")
        sent = len(counter.requests)
        wrong: list[str] = []
        for name, call in BAD_CALLS:
            try:
                result = call(collection)
                if asyncio.iscoroutine(result):
                    await result
            except InvalidArgumentError:
                continue
            except Exception as exc:
                wrong.append(f"{name}: {type(exc).__name__}")
            else:
                wrong.append(f"{name}: no error")
        assert wrong == []
        assert len(counter.requests) == sent  # nothing was sent
    finally:
        await counter.aclose()


async def test_logged_out_user_is_refused_before_any_request(user, orders, transport):
    await user.log_out()
    sent = len(transport.requests)
    with pytest.raises(UserNotLoggedInError):
        await orders.find()
    with pytest.raises(UserNotLoggedInError):
        async with orders.watch():
            pass
    assert len(transport.requests) == sent


async def test_watch_needs_a_streaming_transport(make_app):
    async def passthrough(request: Request) -> None:
        return None

    plain = HookTransport(AiohttpTransport(), passthrough)
    try:
        assert isinstance(plain, Transport) and not isinstance(plain, StreamingTransport)
        app = await make_app(transport=plain)
        user = await app.log_in(Credentials.anonymous())
        orders = user.mongo_client("mongodb-atlas").db("shop").collection("orders")
        assert await orders.count() == 0  # plain calls work
        with pytest.raises(InvalidArgumentError, match="open_stream"):
            async with orders.watch():
                pass
    finally:
        await plain.aclose()


# -- watch ---------------------------------------------------------------------------------


async def test_watch_async_iterator_sees_insert_update_delete(orders, transport, user):
    async with orders.watch() as changes:
        inserted = (await orders.insert_one({"status": "open"})).inserted_id
        await orders.update_one({"_id": inserted}, {"$set": {"status": "paid"}})
        await orders.delete_one({"_id": inserted})

        seen: list[ChangeEvent] = []
        async with asyncio.timeout(TIMEOUT):
            async for change in changes:
                seen.append(change)
                if len(seen) == 3:
                    break
    assert [c.operation_type for c in seen] == ["insert", "update", "delete"]
    assert all(c.document_id == inserted and type(c.document_id) is ObjectId for c in seen)
    assert seen[0].full_document == {"_id": inserted, "status": "open"}
    assert seen[1].update_description["updatedFields"] == {"status": "paid"}
    assert seen[0].namespace == {"db": "shop", "coll": "orders"}
    assert seen[0].resume_token is not None and seen[0].raw["operationType"] == "insert"
    assert transport.open_now == 0  # the block closed the stream

    # The streaming request: baas_request is base64 of the canonical EJSON call; the
    # token is in the Authorization header and nowhere in the URL (reliability S6).
    stream_request = next(r for r in transport.requests if r.method == "GET" and "baas_request" in r.url)
    assert stream_request.headers["Accept"] == "text/event-stream"
    assert stream_request.headers["Authorization"] == f"Bearer {user.access_token}"
    assert user.access_token not in stream_request.url and user.refresh_token not in stream_request.url
    query = urlsplit(stream_request.url).query
    assert "baas_at" not in query
    raw = query.split("baas_request=", 1)[1]
    assert "+" not in raw and "/" not in raw and "=" not in raw  # percent-encoded
    assert json.loads(base64.b64decode(unquote(raw))) == {
        "name": "watch",
        "arguments": [{"database": "shop", "collection": "orders"}],
        "service": "mongodb-atlas",
    }
    assert parse_qs(query)["baas_request"][0] == unquote(raw)


async def test_plain_async_for_opens_on_first_iteration(orders, transport):
    changes = orders.watch()
    assert transport.opened == 0  # nothing happens until iterated

    async def writer() -> None:
        await eventually(lambda: transport.open_now == 1)
        await orders.insert_one({"n": 1})

    task = asyncio.create_task(writer())
    async with asyncio.timeout(TIMEOUT):
        async for change in changes:
            assert change.operation_type == "insert"
            break
    await task
    assert not changes.closed and transport.open_now == 1  # still held by ``changes``
    del changes  # dropped without aclose(): closed on the next turn of the loop
    await eventually(lambda: transport.open_now == 0)


async def test_watch_ids_restrict_events(orders):
    a = (await orders.insert_one({"n": "a"})).inserted_id
    b = (await orders.insert_one({"n": "b"})).inserted_id
    async with orders.watch(ids=[b]) as changes:
        await orders.update_one({"_id": a}, {"$set": {"x": 1}})
        await orders.delete_one({"_id": a})
        await orders.update_one({"_id": b}, {"$set": {"x": 2}})
        change = await asyncio.wait_for(anext(changes), TIMEOUT)
    assert change.operation_type == "update" and change.document_id == b


async def test_watch_filter_restricts_events(orders):
    async with orders.watch(filter={"operationType": "insert", "fullDocument.kind": "wanted"}) as changes:
        kept = (await orders.insert_one({"kind": "other"})).inserted_id
        await orders.update_one({"_id": kept}, {"$set": {"kind": "wanted"}})
        await orders.insert_one({"kind": "wanted", "n": 2})
        change = await asyncio.wait_for(anext(changes), TIMEOUT)
    assert change.operation_type == "insert" and change.full_document["n"] == 2


async def test_watch_as_rx_observable(orders, transport, server):
    received: asyncio.Queue[ChangeEvent] = asyncio.Queue()
    completed: list[object] = []
    observable = orders.watch_changes()
    assert transport.opened == 0  # cold: nothing until subscribed

    subscription = observable.subscribe(
        on_next=received.put_nowait, on_error=completed.append, on_completed=lambda: completed.append("done")
    )
    await eventually(lambda: transport.open_now == 1)
    inserted = (await orders.insert_one({"v": 1})).inserted_id
    await orders.update_one({"_id": inserted}, {"$set": {"v": 2}})
    await orders.delete_one({"_id": inserted})
    async with asyncio.timeout(TIMEOUT):
        kinds = [(await received.get()).operation_type for _ in range(3)]
    assert kinds == ["insert", "update", "delete"]

    subscription.dispose()
    await eventually(lambda: transport.open_now == 0)
    # The server learns about the closed connection at its next write.
    await orders.insert_one({"v": 3})
    await eventually(lambda: server_streams(server) == 0)
    assert completed == [] and received.empty()


async def test_rx_each_subscription_has_its_own_stream(orders, transport):
    observable = orders.watch_changes(filter={"operationType": "insert"})
    first: asyncio.Queue[ChangeEvent] = asyncio.Queue()
    second: asyncio.Queue[ChangeEvent] = asyncio.Queue()
    one = observable.subscribe(on_next=first.put_nowait)
    two = observable.subscribe(on_next=second.put_nowait)
    await eventually(lambda: transport.open_now == 2)
    await orders.insert_one({"v": 1})
    async with asyncio.timeout(TIMEOUT):
        assert (await first.get()).full_document["v"] == 1
        assert (await second.get()).full_document["v"] == 1
    one.dispose()
    await eventually(lambda: transport.open_now == 1)
    await orders.insert_one({"v": 2})
    async with asyncio.timeout(TIMEOUT):
        assert (await second.get()).full_document["v"] == 2
    assert first.empty()
    two.dispose()
    await eventually(lambda: transport.open_now == 0)
    assert transport.opened == 2


async def test_rx_subscriber_exception_does_not_stop_the_stream(orders, transport, caplog):
    received: asyncio.Queue[ChangeEvent] = asyncio.Queue()

    def flaky(change: ChangeEvent) -> None:
        received.put_nowait(change)
        if change.full_document["v"] == 1:
            raise RuntimeError("subscriber bug")

    subscription = orders.watch_changes().subscribe(on_next=flaky)
    await eventually(lambda: transport.open_now == 1)
    await orders.insert_one({"v": 1})
    await orders.insert_one({"v": 2})
    async with asyncio.timeout(TIMEOUT):
        assert [(await received.get()).full_document["v"] for _ in range(2)] == [1, 2]
    assert "watch subscriber raised" in caplog.text
    subscription.dispose()
    await eventually(lambda: transport.open_now == 0)


async def test_closing_the_app_ends_rx_watch_with_app_closed_error(orders, transport, user):
    errors: asyncio.Queue[Exception] = asyncio.Queue()
    orders.watch_changes().subscribe(on_error=errors.put_nowait)
    await eventually(lambda: transport.open_now == 1)
    await user.app.aclose()
    assert isinstance(await asyncio.wait_for(errors.get(), TIMEOUT), AppClosedError)
    assert transport.open_now == 0


async def test_break_out_of_plain_async_for_closes_the_stream(orders, transport, server):
    async def writer() -> None:
        await eventually(lambda: transport.open_now == 1)
        await orders.insert_one({"n": 1})

    task = asyncio.create_task(writer())
    async with asyncio.timeout(TIMEOUT):
        async for _change in orders.watch():
            break
    await task
    await eventually(lambda: transport.open_now == 0)
    await orders.insert_one({"n": 2})
    await eventually(lambda: server_streams(server) == 0)


async def test_cancelling_the_reading_task_closes_the_stream(orders, transport):
    async def reader() -> None:
        async for _change in orders.watch():
            pass

    task = asyncio.create_task(reader())
    await eventually(lambda: transport.open_now == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.open_now == 0  # closed by the cancellation itself, not later


async def test_idle_timeout_ends_a_silent_stream(orders, transport):
    with pytest.raises(RequestTimeoutError):
        async for _change in orders.watch(idle_timeout=0.2):
            pass
    assert transport.open_now == 0


async def test_closed_stream_stays_closed(orders):
    changes = orders.watch()
    async with changes:
        pass
    assert changes.closed
    with pytest.raises(StopAsyncIteration):
        await anext(changes)
    with pytest.raises(appusers.errors.ClientError):
        async with changes:
            pass


async def test_watch_refreshes_once_on_401(orders, user, server, transport):
    await server.revoke_access_tokens(user.id)
    refreshes, streams = server.stats["refresh"], server.stats["stream"]
    old_token = user.access_token
    async with orders.watch() as changes:
        await orders.insert_one({"n": 1})
        change = await asyncio.wait_for(anext(changes), TIMEOUT)
    assert change.operation_type == "insert"
    assert server.stats["refresh"] == refreshes + 1
    assert server.stats["stream"] == streams + 2  # the 401, then the retry
    retried = [r for r in transport.requests if "baas_request" in r.url][-2:]
    assert [r.headers["Authorization"] for r in retried] == [
        f"Bearer {old_token}",
        f"Bearer {user.access_token}",
    ]


# -- the event-stream parser ---------------------------------------------------------------


def test_sse_parser_fields_comments_and_line_endings():
    parser = SseParser()
    lines = [
        b": a comment\r\n",
        b"retry: 1000",
        b"id: 7\r",
        b"event: message",
        b"data:no space",
        b"data:  two spaces",
        b"data",
        b"",
        b"event: ping",
        b"",  # no data: nothing dispatched, and the type resets
        b"data: x",
        b"\r\n",
    ]
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert events == [SseEvent("message", "no space\n two spaces\n"), SseEvent("message", "x")]
    assert parser.feed("event: error") is None and parser.feed("data: {}") is None
    assert parser.feed("") == SseEvent("error", "{}")


def test_sse_unescape_only_the_three_escapes():
    assert unescape_data("100%25 %0A%0D %41 %250A %0a %") == "100% \n\r %41 %0A %0a %"


JSON = {"content-type": "application/json"}
EVENTS = {"content-type": "text/event-stream"}


def fake_jwt(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iat": now, "exp": now + 1800, "nonce": uuid.uuid4().hex, **claims}
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def ok(body: Any) -> Response:
    return Response(200, JSON, json.dumps(body).encode())


def mock_backend(
    stream: Callable[[Request], Response], call: Callable[[Request], Response] | None = None
) -> RecordingTransport:
    """A fake backend: log-in, profile, refresh; ``stream`` answers watch, ``call`` functions/call."""
    login = {"user_id": "u1", "access_token": fake_jwt(), "refresh_token": fake_jwt(), "device_id": "d" * 24}
    profile = {"type": "normal", "identities": [{"id": "x", "provider_type": "anon-user"}], "data": {}}

    def handler(request: Request) -> Response:
        path = request.url.split("?")[0]
        if path.endswith("/location"):
            return ok({"hostname": "http://127.0.0.1:1"})
        if path.endswith("/login"):
            return ok(login)
        if path.endswith("/auth/profile"):
            return ok(profile)
        if path.endswith("/auth/session"):
            return ok({"access_token": fake_jwt()})
        if path.endswith("/functions/call") and request.method == "GET":
            return stream(request)
        if path.endswith("/functions/call") and call is not None:
            return call(request)
        return Response(404)

    return RecordingTransport(MockTransport(handler))


@contextlib.asynccontextmanager
async def mock_collection(stream: Callable[[Request], Response]) -> AsyncIterator[tuple[Any, Any]]:
    transport = mock_backend(stream)
    async with App("app", base_url="http://127.0.0.1:1", transport=transport) as app:
        user = await app.log_in(Credentials.anonymous())
        yield user.mongo_client("mongodb-atlas").db("shop").collection("orders"), transport


async def test_sse_stream_through_mock_transport_escapes_crlf_comments_and_error_event():
    oid = ObjectId()
    first = json_util.dumps({"operationType": "insert", "documentKey": {"_id": oid}})
    body = (
        b": stream open\r\n\r\n"
        b"id: 1\r\nretry: 10\r\n"
        b"event: message\r\n"
        # Split across two data lines (joined with LF) and with an escaped LF and CR between
        # tokens; the percent sign inside the string is escaped as %25, %41 is left alone.
        + f"data: {first[:-1]},%0A%0D\r\n".encode()
        + b'data: "fullDocument": {"note": "100%25 sure %41", "_id": '
        + json_util.dumps(oid).encode()
        + b"}}\r\n\r\n"
        b"event: heartbeat\ndata: {}\n\n"  # other event types are ignored
        b'data: {"operationType": "delete"}\n\n'  # no event line: a message; LF endings
        b"event: error\r\n"
        b'data: {"error_code": "MongoDBError", "error": "watch closed: 100%25 done"}\r\n\r\n'
    )
    async with mock_collection(lambda request: Response(200, EVENTS, body)) as (orders, transport):
        seen: list[ChangeEvent] = []
        with pytest.raises(MongoDBError) as info:
            async for change in orders.watch():
                seen.append(change)
        assert info.value.message == "watch closed: 100% done"
        assert transport.open_now == 0
    assert [c.operation_type for c in seen] == ["insert", "delete"]
    assert seen[0].full_document == {"note": "100% sure %41", "_id": oid}
    assert seen[0].document_id == oid


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        (b"data: [1, 2]\n\n", MalformedJsonError, r"malformed event: \[1, 2\]"),
        (b"data: {not json\n\n", MalformedJsonError, "malformed event"),
        (b'data: {"_id": {"$oid": "zz"}}\n\n', MalformedJsonError, "malformed event"),
        (b"event: error\ndata: oops\n\n", MalformedJsonError, "malformed error event"),
        (b'event: error\ndata: {"error_code": "BadRequest", "error": "no"}\n\n', BadRequestError, "no"),
        (b'event: error\ndata: {"error_code": "Weird", "error": "w"}\n\n', ServiceError, "w"),
    ],
)
async def test_malformed_and_error_events_end_the_stream_with_typed_errors(body, error, text):
    async with mock_collection(lambda request: Response(200, EVENTS, body)) as (orders, transport):
        with pytest.raises(error, match=text):
            async with orders.watch() as changes:
                await anext(changes)
        assert transport.open_now == 0


async def test_stream_ending_ends_the_iteration_and_the_observable():
    body = b'data: {"operationType": "insert"}\n\n'
    async with mock_collection(lambda request: Response(200, EVENTS, body)) as (orders, transport):
        assert [c.operation_type async for c in orders.watch()] == ["insert"]
        assert transport.open_now == 0
        done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        got: list[str] = []
        orders.watch_changes().subscribe(
            on_next=lambda c: got.append(c.operation_type), on_completed=lambda: done.set_result(got)
        )
        assert await asyncio.wait_for(done, TIMEOUT) == ["insert"]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (Response(503, {"content-type": "text/html"}, b"<html>busy</html>"), HTTPStatusError),
        (Response(404, JSON, b'{"error_code": "ServiceNotFound", "error": "x"}'), ServiceNotFoundError),
        (Response(200, JSON, b'{"error_code": "MongoDBError", "error": "x"}'), MongoDBError),
        (Response(200, {"content-type": "text/plain"}, b"hello"), ResponseError),
    ],
)
async def test_failed_opening_raises_typed_error(response, error):
    async with mock_collection(lambda request: response) as (orders, transport):
        with pytest.raises(error):
            async with orders.watch():
                pass
        assert transport.open_now == 0


async def test_malformed_result_is_malformed_json_error():
    transport = mock_backend(
        lambda request: Response(404),
        call=lambda request: Response(200, JSON, b'{"_id": {"$oid": "not-an-object-id"}}'),
    )
    async with App("app", base_url="http://127.0.0.1:1", transport=transport) as app:
        user = await app.log_in(Credentials.anonymous())
        with pytest.raises(MalformedJsonError):
            await user.mongo_client("mongodb-atlas").db("shop").collection("orders").find_one()


async def test_401_refreshes_once_then_gives_up():
    async with mock_collection(
        lambda request: Response(401, JSON, b'{"error_code": "InvalidSession", "error": "expired"}')
    ) as (orders, transport):
        with pytest.raises(InvalidSessionError):
            async with orders.watch():
                pass
        paths = [urlsplit(r.url).path.rsplit("/", 2)[-2:] for r in transport.requests]
        assert paths[-3:] == [["functions", "call"], ["auth", "session"], ["functions", "call"]]
        first, retry = [r for r in transport.requests if "baas_request" in r.url]
        assert first.headers["Authorization"] != retry.headers["Authorization"]
        assert transport.open_now == 0


async def test_error_event_through_rx_is_on_error():
    body = b'event: error\ndata: {"error_code": "MongoDBError", "error": "gone"}\n\n'
    async with mock_collection(lambda request: Response(200, EVENTS, body)) as (orders, _transport):
        failed: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        orders.watch_changes().subscribe(on_error=failed.set_result)
        error = await asyncio.wait_for(failed, TIMEOUT)
    assert isinstance(error, MongoDBError) and error.message == "gone"


def test_public_names_are_exported():
    for name in (
        "MongoClient", "MongoDatabase", "MongoCollection", "ChangeEvent", "ChangeStream",
        "InsertOneResult", "InsertManyResult", "UpdateResult", "DeleteResult", "StreamingTransport",
    ):
        assert name in appusers.__all__ and hasattr(appusers, name)
