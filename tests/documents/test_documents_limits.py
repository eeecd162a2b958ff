"""The store under hostile input: RE2 patterns, time limits, nesting, names, 16 MiB, bounded watches."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import pytest
from bson.regex import Regex

from appusers.server.documents import DocumentStoreError, EmbeddedDocumentStore
from appusers.server.documents._deadline import MaxTimeExpired
from appusers.server.documents._limits import MAX_DEPTH
from appusers.server.documents._watch import StreamFellBehind

EVIL = "a" * 40 + "!"  # ^(a+)+$ backtracks 2**40 steps on this in Python's re


@pytest.fixture
async def store() -> Any:
    s = EmbeddedDocumentStore(None, time_limit=5.0)
    yield s
    await s.aclose()


async def test_catastrophic_patterns_run_in_linear_time(store: EmbeddedDocumentStore) -> None:
    coll = store.collection("db", "c")
    await coll.insert_many([{"_id": 1, "s": EVIL}, {"_id": 2, "s": "aaa"}, {"_id": 3, "s": ["x", "aa"]}])
    evil = "^(a+)+$"
    # Every way a pattern reaches the matcher; each would take hours on a backtracking engine and
    # would end in MaxTimeExpired (5 s limit) rather than an answer.
    cases: list[tuple[dict[str, Any], set[int]]] = [
        ({"s": {"$regex": evil}}, {2, 3}),
        ({"s": Regex(evil)}, {2, 3}),
        ({"s": re.compile(evil)}, {2, 3}),
        ({"s": {"$in": [Regex(evil), "nope"]}}, {2, 3}),
        ({"s": {"$nin": [Regex(evil)]}}, {1}),
        ({"s": {"$not": Regex(evil)}}, {1}),
        ({"s": {"$regex": "^(A+)+$", "$options": "i"}}, {2, 3}),
        ({"$or": [{"s": {"$regex": evil}}]}, {2, 3}),
    ]
    for query, ids in cases:
        assert {d["_id"] for d in await coll.find(query)} == ids, query
    out = await coll.aggregate(
        [
            {"$match": {"_id": {"$lt": 3}}},
            {"$project": {"m": {"$regexMatch": {"input": "$s", "regex": evil}}}},
        ]
    )
    assert [d["m"] for d in out] == [False, True]
    out = await coll.aggregate([{"$match": {"s": Regex(evil)}}, {"$count": "n"}])
    assert out == [{"n": 2}]


async def test_regex_options_keep_mongodb_semantics(store: EmbeddedDocumentStore) -> None:
    coll = store.collection("db", "c")
    await coll.insert_many([{"_id": 1, "s": "Line one\nline two"}, {"_id": 2, "s": "a.b"}])

    async def ids(query: dict[str, Any]) -> set[int]:
        return {d["_id"] for d in await coll.find(query)}

    assert await ids({"s": {"$regex": "^line two", "$options": "m"}}) == {1}
    assert await ids({"s": {"$regex": "^line two"}}) == set()
    assert await ids({"s": {"$regex": "^LINE", "$options": "i"}}) == {1}
    assert await ids({"s": {"$regex": "one.line", "$options": "s"}}) == {1}
    assert await ids({"s": {"$regex": "a \\. b  # a literal dot", "$options": "x"}}) == {2}
    assert await ids({"s": Regex("^line", "im")}) == {1}
    # A pattern stored in a document comes back as a BSON Regex, also from a pipeline.
    await coll.insert_one({"_id": 3, "p": Regex("x", "i")})
    doc = await coll.find_one({"_id": 3})
    assert isinstance(doc["p"], Regex) and doc["p"].pattern == "x"
    out = await coll.aggregate([{"$match": {"_id": 3}}, {"$project": {"q": {"$literal": Regex("y")}}}])
    assert isinstance(out[0]["q"], Regex) and out[0]["q"].pattern == "y"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"s": {"$regex": "(a)\\1"}}, "not supported by the linear-time engine"),
        ({"s": {"$regex": "(?=a)b"}}, "not supported by the linear-time engine"),
        ({"s": {"$regex": "a", "$options": "q"}}, "invalid flag in regex options: q"),
        ({"s": {"$regex": 5}}, "$regex has to be a string"),
        ({"s": {"$regex": "x" * 40_000}}, "too long"),
        ({"s": {"$in": [Regex("(?<!a)b")]}}, "not supported"),
        ({"s": {"$regex": "\ud800"}}, "Regular expression is invalid"),
    ],
)
async def test_patterns_re2_cannot_take_are_refused(
    store: EmbeddedDocumentStore, query: dict[str, Any], message: str
) -> None:
    coll = store.collection("db", "c")
    # Refused up front, even with nothing to match against.
    with pytest.raises(DocumentStoreError, match=re.escape(message)):
        await coll.find(query)


async def test_time_limit_stops_a_long_operation_and_the_store_goes_on(tmp_path: Any) -> None:
    store = EmbeddedDocumentStore(tmp_path / "docs")
    try:
        coll = store.collection("db", "c")
        await coll.insert_many([{"_id": i, "a": list(range(300))} for i in range(300)])
        store.time_limit = 0.3  # only for the slow part: a loaded CI machine must not fail the setup
        slow = {"a": {"$in": list(range(1000, 4000))}}  # ~3e8 comparisons in pure Python
        with pytest.raises(MaxTimeExpired, match=r"\(MaxTimeMSExpired\) operation exceeded time limit"):
            await coll.find(slow)
        # A write whose filter runs out of time changes nothing.
        with pytest.raises(MaxTimeExpired):
            await coll.update_many({"$or": [slow, {"_id": {"$gte": 0}}]}, {"$set": {"touched": True}})
        assert await coll.count({"touched": True}) == 0
        # The worker is free again, and the next operations are not hit by a stale interrupt.
        store.time_limit = 10.0
        for i in range(50):
            await coll.update_one({"_id": i}, {"$set": {"n": i}})
        assert await coll.count({"n": {"$exists": True}}) == 50
    finally:
        await store.aclose()
    reopened = EmbeddedDocumentStore(tmp_path / "docs")
    try:
        assert await reopened.collection("db", "c").count({"touched": True}) == 0
        assert await reopened.collection("db", "c").count({"n": {"$exists": True}}) == 50
    finally:
        await reopened.aclose()


async def test_an_operation_queued_past_its_deadline_never_runs() -> None:
    store = EmbeddedDocumentStore(None, time_limit=0.3)
    try:
        assert store.time_limit == 0.3
        coll = store.collection("db", "c")
        # Occupy the worker longer than the limit (a raw job: no deadline of its own).
        busy = asyncio.wrap_future(store._executor.submit(time.sleep, 0.6))
        with pytest.raises(MaxTimeExpired):
            await coll.insert_one({"_id": "late"})
        await busy
        assert await coll.count({"_id": "late"}) == 0
    finally:
        await store.aclose()


def _nest(depth: int, make: Any, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = make(value)
    return value


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.find(_nest(900, lambda v: {"$and": [v]}, {"a": 1})),
        lambda c: c.find({"$expr": _nest(400, lambda v: {"$not": [v]}, True)}),
        lambda c: c.find({"a": _nest(400, lambda v: {"$not": v}, {"$eq": 1})}),
        lambda c: c.insert_one(_nest(900, lambda v: {"a": v}, 1)),
        lambda c: c.insert_one({"a": _nest(900, lambda v: [v], 1)}),
        lambda c: c.update_one({}, {"$set": {".".join(["a"] * 900): 1}}, upsert=True),
        lambda c: c.update_one({}, {"$set": {".".join(["a"] * 5000): 1}}, upsert=True),
        lambda c: c.aggregate([{"$project": {"x": _nest(400, lambda v: {"$add": [v, 1]}, 1)}}]),
        lambda c: c.find({}, sort={".".join(["a"] * 900): 1}),
        lambda c: c.find({".".join(["a"] * 900): 1}),
    ],
)
async def test_deep_nesting_is_refused_not_a_crash(store: EmbeddedDocumentStore, call: Any) -> None:
    coll = store.collection("db", "c")
    await coll.insert_one({"a": 1})
    with pytest.raises(DocumentStoreError, match=r"nesting depth|deeper than"):
        await call(coll)
    assert await coll.count() == 1


async def test_nesting_up_to_the_limit_works(store: EmbeddedDocumentStore) -> None:
    coll = store.collection("db", "c")
    doc = _nest(MAX_DEPTH - 2, lambda v: {"a": v}, 1)
    await coll.insert_one({"_id": 1, "d": doc})
    assert (await coll.find_one({"_id": 1}))["d"] == doc
    path = ".".join(["d"] + ["a"] * (MAX_DEPTH - 2))
    assert await coll.count({path: 1}) == 1


@pytest.mark.parametrize(
    ("database", "collection", "message"),
    [
        ("a\x00", "c", "Invalid database name"),
        ("a.b", "c", "Invalid database name"),
        ("a b", "c", "Invalid database name"),
        ("d" * 64, "c", "Invalid database name"),
        ("", "c", "non-empty"),
        ("d", "", "non-empty"),
        ("d", "$cmd", "Invalid collection name"),
        ("d", "a$b", "Invalid collection name"),
        ("d", "c\x00", "Invalid collection name"),
        ("d", "system.users", "Invalid collection name"),
        ("d", "c" * 300, "longer than 255"),
        ("d", "\ud800", "valid UTF-8"),
    ],
)
def test_namespace_names_follow_mongodb_rules(database: str, collection: str, message: str) -> None:
    async def run() -> None:
        store = EmbeddedDocumentStore(None)
        try:
            with pytest.raises(DocumentStoreError, match=re.escape(message)):
                store.collection(database, collection)
            store.collection("app-data_1", "orders.archive")  # dots and dashes are fine where MongoDB allows
        finally:
            await store.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    "expression",
    [
        {"$divide": [1, 0]},
        {"$pow": [10, 100000]},
        {"$mod": [1, 0]},
        {"$log": [-1, 10]},
        {"$sqrt": -1},
        {"$exp": 100000},
    ],
)
async def test_arithmetic_errors_are_store_errors(store: EmbeddedDocumentStore, expression: Any) -> None:
    coll = store.collection("db", "c")
    await coll.insert_one({"a": 1})
    try:
        await coll.aggregate([{"$project": {"x": expression}}])
    except DocumentStoreError:
        pass  # MongoDB refuses some of these, returns NaN/Infinity for others; never a crash
    with pytest.raises(DocumentStoreError):
        await coll.find({"$expr": {"$eq": [{"$divide": ["$a", 0]}, 1]}})


MIB = 1024 * 1024


async def test_documents_over_16_mib_are_refused_everywhere(store: EmbeddedDocumentStore) -> None:
    coll = store.collection("db", "c")
    big = "x" * (16 * MIB)
    with pytest.raises(DocumentStoreError, match=r"object to insert too large\. size in bytes: 167772"):
        await coll.insert_one({"s": big})
    with pytest.raises(DocumentStoreError, match="too large"):
        await coll.insert_many([{"_id": "ok"}, {"_id": "big", "s": big}])
    assert await coll.count() == 0  # all or none
    await coll.insert_one({"_id": 1, "arr": []})
    chunk = ["y" * 1000] * 3000  # ~3 MiB per push
    pushes = 0
    with pytest.raises(DocumentStoreError, match="Resulting document after update is larger than 16777216"):
        for _ in range(10):
            await coll.update_one({"_id": 1}, {"$push": {"arr": {"$each": chunk}}})
            pushes += 1
    assert pushes == 5
    assert len((await coll.find_one({"_id": 1}))["arr"]) == 5 * 3000  # the failed push left no trace
    with pytest.raises(DocumentStoreError, match="larger than 16777216"):
        await coll.update_one({"_id": 1}, {"s": big})  # replacement
    with pytest.raises(DocumentStoreError, match="larger than 16777216"):
        await coll.find_one_and_replace({"_id": 1}, {"s": big})
    with pytest.raises(DocumentStoreError, match="larger than 16777216"):
        await coll.update_one({"_id": 2}, {"$set": {"s": big}}, upsert=True)
    with pytest.raises(DocumentStoreError, match="larger than 16777216"):
        await coll.update_many({}, {"$set": {"s": "z" * (2 * MIB)}})
    assert await coll.count() == 1
    assert "s" not in (await coll.find_one({"_id": 1}))


async def test_watch_buffer_is_bounded_in_bytes() -> None:
    store = EmbeddedDocumentStore(None, watch_buffer_bytes=64 * 1024)
    try:
        coll = store.collection("db", "c")
        stalled = coll.watch()
        reader = coll.watch()
        failed: list[BaseException] = []
        stalled.add_fail_callback(failed.append)
        got: list[dict[str, Any]] = []
        for i in range(100):  # ~200 KiB of events; the reader keeps up, the stalled stream does not
            await coll.insert_one({"_id": i, "pad": "p" * 2000})
            got.append(await reader.__anext__())
        await asyncio.sleep(0)
        assert [e["documentKey"]["_id"] for e in got] == list(range(100))
        assert len(failed) == 1 and isinstance(failed[0], StreamFellBehind)
        with pytest.raises(StreamFellBehind, match="ChangeStreamHistoryLost"):
            await stalled.__anext__()
        assert stalled._buffered == 0 and not stalled._buffer  # its memory is released
        # One event larger than the whole budget still reaches a fresh reader.
        fresh = coll.watch()
        await coll.insert_one({"_id": "big", "pad": "q" * (200 * 1024)})
        assert (await fresh.__anext__())["fullDocument"]["_id"] == "big"
        for stream in (stalled, reader, fresh):
            await stream.aclose()
    finally:
        await store.aclose()


async def test_watch_delivery_is_one_loop_hop_per_write() -> None:
    store = EmbeddedDocumentStore(None)
    try:
        coll = store.collection("db", "c")
        streams = [coll.watch() for _ in range(20)]
        loop = asyncio.get_running_loop()
        calls = 0
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if threading.current_thread() is not threading.main_thread():
                calls += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        try:
            await coll.insert_one({"_id": 1})
        finally:
            loop.call_soon_threadsafe = original  # type: ignore[method-assign]
        events = [await s.__anext__() for s in streams]
        assert calls == 2  # the batch of 20 events, and the operation's own result
        assert all(e["documentKey"] == {"_id": 1} for e in events)
        events[0]["fullDocument"]["x"] = "mutated"
        assert "x" not in events[1]["fullDocument"]  # each reader decodes its own copy
        for s in streams:
            await s.aclose()
    finally:
        await store.aclose()


def test_an_index_build_cut_short_leaves_no_partial_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from appusers.server.documents import _index
    from appusers.server.documents._deadline import Interrupted

    views = {i: {"g": i % 2} for i in range(100)}
    indexes = _index.EqualityIndexes()
    real_values = _index._values
    calls = 0

    def interrupted_midway(view: Any, field: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 50:
            raise Interrupted  # what the watchdog raises inside the worker at the deadline
        return real_values(view, field)

    monkeypatch.setattr(_index, "_values", interrupted_midway)
    with pytest.raises(Interrupted):
        indexes.candidates("ns", {"g": 1}, views)
    monkeypatch.setattr(_index, "_values", real_values)
    assert indexes.candidates("ns", {"g": 1}, views) == {i for i in range(100) if i % 2}
