"""Persistence, BSON type round-trips, change streams, concurrency and a size sanity run."""

from __future__ import annotations

import asyncio
import datetime
import gc
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp

from appusers.server.documents import (
    DocumentCollection,
    DocumentStore,
    DocumentStoreError,
    EmbeddedDocumentStore,
    PyMongoDocumentStore,
)

TYPED = {
    "_id": ObjectId(),
    "i32": 7,
    "i64": Int64(5),
    "big": 2**40,
    "dbl": 1.5,
    "dec": Decimal128("1.10"),
    "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
    "bin": Binary(b"\x00\x01", 5),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "raw": b"\x01\x02",
    "ts": Timestamp(5, 1),
    "re": Regex("^a", "i"),
    "none": None,
    "nested": {"list": [Int64(1), {"d": Decimal128("2")}]},
}


def _types(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _types(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_types(v) for v in doc]
    return type(doc).__name__


async def test_protocols_are_satisfied() -> None:
    store = EmbeddedDocumentStore(None)
    try:
        assert isinstance(store, DocumentStore)
        assert isinstance(store.collection("d", "c"), DocumentCollection)
    finally:
        await store.aclose()
    # The live-MongoDB adapter cannot run here, but it must at least satisfy the same seam.
    assert isinstance(PyMongoDocumentStore(client=None), DocumentStore)  # type: ignore[arg-type]


async def test_persistence_across_reopen_keeps_order_and_types(tmp_path: Path) -> None:
    store = EmbeddedDocumentStore(tmp_path / "docs")
    try:
        coll = store.collection("app", "things")
        await coll.insert_one(dict(TYPED))
        await coll.insert_many([{"_id": i, "v": i} for i in range(5)])
        await coll.update_one({"_id": 2}, {"$inc": {"v": Int64(10)}})
        await coll.delete_one({"_id": 3})
        await store.collection("other", "things").insert_one({"_id": 1})
    finally:
        await store.aclose()

    store = EmbeddedDocumentStore(tmp_path / "docs")
    try:
        coll = store.collection("app", "things")
        docs = await coll.find()
        assert [d["_id"] for d in docs][1:] == [0, 1, 2, 4]  # natural (insertion) order survives
        typed = docs[0]
        assert _types(typed) == {
            "_id": "ObjectId",
            "i32": "int",
            "i64": "Int64",
            "big": "Int64",  # as a MongoDB server stores an int beyond 32 bits
            "dbl": "float",
            "dec": "Decimal128",
            "dt": "datetime",
            "bin": "Binary",
            "uuid": "UUID",  # subtype 4, the STANDARD representation the EJSON layer uses
            "raw": "bytes",
            "ts": "Timestamp",
            "re": "Regex",
            "none": "NoneType",
            "nested": {"list": ["Int64", {"d": "Decimal128"}]},
        }
        assert typed["dt"] == datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)  # millisecond precision
        assert typed["dec"] == Decimal128("1.10") and typed["bin"] == Binary(b"\x00\x01", 5)
        aware = datetime.datetime(
            2024, 1, 2, 4, 4, 5, 123000, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
        )
        assert (await coll.find_one({"dt": aware}, projection={"_id": 1})) == {
            "_id": TYPED["_id"]
        }  # EJSON dates
        v2 = await coll.find_one({"_id": 2})
        assert v2 == {"_id": 2, "v": 12} and isinstance(v2["v"], Int64)
        assert await store.collection("other", "things").count() == 1
    finally:
        await store.aclose()


async def test_directory_is_locked_while_open(tmp_path: Path) -> None:
    store = EmbeddedDocumentStore(tmp_path)
    try:
        with pytest.raises(DocumentStoreError, match="already open"):
            EmbeddedDocumentStore(tmp_path)
    finally:
        await store.aclose()
    again = EmbeddedDocumentStore(tmp_path)
    await again.aclose()


async def test_closed_store_refuses_work() -> None:
    store = EmbeddedDocumentStore(None)
    coll = store.collection("d", "c")
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(DocumentStoreError, match="closed"):
        await coll.find()


async def test_arithmetic_keeps_mongodb_types() -> None:
    store = EmbeddedDocumentStore(None)
    try:
        coll = store.collection("d", "c")
        await coll.insert_one({"_id": 1, "l": Int64(1), "i": 1, "d": Decimal128("1.5"), "f": 1.0})
        await coll.update_one({"_id": 1}, {"$inc": {"l": 1, "i": 1, "d": 1, "f": 1}})
        doc = await coll.find_one({"_id": 1})
        assert _types(doc) == {"_id": "int", "l": "Int64", "i": "int", "d": "Decimal128", "f": "float"}
        assert doc["d"] == Decimal128("2.5")
        await coll.update_one({"_id": 1}, {"$mul": {"i": Int64(3)}, "$max": {"d": Decimal128("7")}})
        doc = await coll.find_one({"_id": 1})
        assert doc["i"] == 6 and isinstance(doc["i"], Int64) and doc["d"] == Decimal128("7")
    finally:
        await store.aclose()


# -- change streams ------------------------------------------------------------------------------


async def _next(stream: Any) -> dict[str, Any]:
    return await asyncio.wait_for(stream.__anext__(), timeout=5)


async def test_watch_reports_every_kind_of_change() -> None:
    store = EmbeddedDocumentStore(None)
    coll = store.collection("shop", "orders")
    stream = coll.watch()
    try:
        oid = await coll.insert_one({"status": "open", "n": {"a": 1, "b": 2}, "drop": True})
        await coll.update_one({"_id": oid}, {"$set": {"status": "paid", "n.a": 5}, "$unset": {"drop": ""}})
        await coll.update_one({"_id": oid}, {"replaced": True})
        await coll.delete_one({"_id": oid})

        insert = await _next(stream)
        assert insert["operationType"] == "insert"
        assert insert["ns"] == {"db": "shop", "coll": "orders"}
        assert insert["documentKey"] == {"_id": oid}
        assert insert["fullDocument"] == {"_id": oid, "status": "open", "n": {"a": 1, "b": 2}, "drop": True}
        assert isinstance(insert["clusterTime"], Timestamp) and isinstance(insert["_id"]["_data"], str)

        update = await _next(stream)
        assert update["operationType"] == "update"
        assert update["updateDescription"] == {
            "updatedFields": {"status": "paid", "n.a": 5},
            "removedFields": ["drop"],
        }
        assert update["fullDocument"] == {"_id": oid, "status": "paid", "n": {"a": 5, "b": 2}}

        replace = await _next(stream)
        assert replace["operationType"] == "replace" and replace["fullDocument"] == {
            "_id": oid,
            "replaced": True,
        }

        delete = await _next(stream)
        assert delete["operationType"] == "delete" and delete["documentKey"] == {"_id": oid}
        assert "fullDocument" not in delete
        tokens = [e["_id"]["_data"] for e in (insert, update, replace, delete)]
        assert tokens == sorted(tokens) and len(set(tokens)) == 4
    finally:
        await stream.aclose()
        await store.aclose()


async def test_watch_ids_and_filter_restrict_events() -> None:
    store = EmbeddedDocumentStore(None)
    coll = store.collection("shop", "orders")
    by_id = coll.watch(ids=[2, 3])
    by_filter = coll.watch(filter={"operationType": "insert", "fullDocument.status": "open"})
    other_coll = store.collection("shop", "other").watch()
    try:
        await coll.insert_many([{"_id": 1, "status": "open"}, {"_id": 2, "status": "closed"}])
        await coll.update_one({"_id": 1}, {"$set": {"status": "closed"}})
        await coll.insert_one({"_id": 3, "status": "open"})
        await coll.delete_one({"_id": 2})
        await store.collection("shop", "other").insert_one({"_id": "marker"})

        assert [
            (e["operationType"], e["documentKey"]["_id"]) for e in [await _next(by_id) for _ in range(3)]
        ] == [
            ("insert", 2),
            ("insert", 3),
            ("delete", 2),
        ]
        assert [e["documentKey"]["_id"] for e in [await _next(by_filter) for _ in range(2)]] == [1, 3]
        # Nothing else arrived for either: the marker insert in another collection is the next event anywhere.
        assert (await _next(other_coll))["documentKey"] == {"_id": "marker"}
        assert not by_id._buffer and not by_filter._buffer  # type: ignore[attr-defined]
    finally:
        for s in (by_id, by_filter, other_coll):
            await s.aclose()
        await store.aclose()


async def test_watch_aclose_and_store_close_end_iteration() -> None:
    store = EmbeddedDocumentStore(None)
    coll = store.collection("d", "c")
    stream = coll.watch()
    waiting = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, timeout=5)
    await coll.insert_one({"x": 1})  # a closed stream receives nothing and holds nothing

    second = coll.watch()
    collected: list[dict[str, Any]] = []

    async def consume() -> None:
        async for event in second:
            collected.append(event)

    task = asyncio.ensure_future(consume())
    await coll.insert_one({"y": 1})
    await store.aclose()
    await asyncio.wait_for(task, timeout=5)  # the store closing ended the loop cleanly
    assert [e["fullDocument"]["y"] for e in collected] == [1]


async def test_dropped_stream_leaks_nothing() -> None:
    store = EmbeddedDocumentStore(None)
    coll = store.collection("d", "c")
    tasks_before = len(asyncio.all_tasks())
    stream = coll.watch()
    await coll.insert_one({"x": 1})
    assert len(asyncio.all_tasks()) == tasks_before  # streams run no task of their own
    del stream
    gc.collect()
    await coll.insert_one({"x": 2})  # publishing after the drop must not fail
    assert sum(len(s) for s in store._hub._streams.values()) == 0  # type: ignore[attr-defined]
    await store.aclose()


async def test_events_are_private_copies() -> None:
    store = EmbeddedDocumentStore(None)
    coll = store.collection("d", "c")
    a, b = coll.watch(), coll.watch()
    try:
        await coll.insert_one({"_id": 1, "v": [1]})
        ea, eb = await _next(a), await _next(b)
        ea["fullDocument"]["v"].append(2)
        assert eb["fullDocument"]["v"] == [1]
        assert await coll.find_one({"_id": 1}) == {"_id": 1, "v": [1]}
    finally:
        await a.aclose()
        await b.aclose()
        await store.aclose()


# -- concurrency and size ------------------------------------------------------------------------


async def test_concurrent_increments_lose_nothing(tmp_path: Path) -> None:
    store = EmbeddedDocumentStore(tmp_path)
    try:
        coll = store.collection("d", "counters")
        await coll.insert_one({"_id": "c", "n": 0})
        await asyncio.gather(*(coll.update_one({"_id": "c"}, {"$inc": {"n": 1}}) for _ in range(500)))
        await asyncio.gather(
            *(coll.update_one({"_id": f"u{i % 10}"}, {"$inc": {"n": 1}}, upsert=True) for i in range(200))
        )
        assert (await coll.find_one({"_id": "c"}))["n"] == 500
        assert await coll.count({"_id": {"$regex": "^u"}}) == 10
        assert sum(d["n"] for d in await coll.find({"_id": {"$regex": "^u"}})) == 200
        assert await coll.count({"_id": re.compile("^u")}) == 10  # a regex on _id is not a key lookup
    finally:
        await store.aclose()


async def test_ten_thousand_documents_sanity(tmp_path: Path) -> None:
    """Not a benchmark (timings are printed, never asserted): the store handles ~10k documents."""
    store = EmbeddedDocumentStore(tmp_path)
    coll = store.collection("bench", "users")
    t0 = time.perf_counter()
    for i in range(2_000):
        await coll.insert_one({"i": i, "g": i % 10, "email": f"user{i}@example.com"})
    t1 = time.perf_counter()
    await coll.insert_many(
        [{"i": i, "g": i % 10, "email": f"user{i}@example.com"} for i in range(2_000, 10_000)]
    )
    t2 = time.perf_counter()
    found = await coll.find({"g": 3, "i": {"$gte": 5_000}})
    t3 = time.perf_counter()
    sorted_page = await coll.find({}, sort={"i": -1}, limit=10)
    t4 = time.perf_counter()
    await store.aclose()
    reopened = EmbeddedDocumentStore(tmp_path)
    t5 = time.perf_counter()
    total = await reopened.collection("bench", "users").count()
    await reopened.aclose()
    print(
        f"\n2k insert_one {t1 - t0:.2f}s, 8k insert_many {t2 - t1:.2f}s, scan-find {(t3 - t2) * 1000:.0f}ms, "
        f"sort+limit {(t4 - t3) * 1000:.0f}ms, reopen {t5 - t4:.2f}s"
    )
    assert len(found) == 500 and [d["i"] for d in sorted_page] == list(range(9_999, 9_989, -1))
    assert total == 10_000


async def test_bad_arguments_are_store_errors() -> None:
    store = EmbeddedDocumentStore(None)
    try:
        with pytest.raises(DocumentStoreError):
            store.collection("", "c")
        coll = store.collection("d", "c")
        with pytest.raises(DocumentStoreError):
            await coll.find("not a filter")  # type: ignore[arg-type]
        with pytest.raises(DocumentStoreError):
            await coll.insert_many([])
        with pytest.raises(DocumentStoreError, match="sort"):
            await coll.find({}, sort={"a": 2})
        with pytest.raises(DocumentStoreError, match="not valid BSON"):
            await coll.insert_one({"u": Binary(b"\x00\x01", 4)})  # a "UUID" that cannot be read back
        assert await coll.count() == 0
    finally:
        await store.aclose()


async def test_committed_writes_survive_a_killed_process(tmp_path: Path) -> None:
    """A process that dies without closing the store (os._exit) keeps every write that returned."""
    script = f"""
import asyncio, os
from pathlib import Path
from bson import Int64
from appusers.server.documents import EmbeddedDocumentStore

async def main():
    store = EmbeddedDocumentStore(Path({str(tmp_path)!r}))
    coll = store.collection("d", "c")
    for i in range(50):
        await coll.insert_one({{"_id": i, "n": Int64(i)}})
    await coll.update_many({{}}, {{"$inc": {{"n": 1}}}})
    await coll.delete_one({{"_id": 0}})
    print("written", flush=True)
    os._exit(0)  # no aclose, no atexit: as close to a crash as a test can get

asyncio.run(main())
"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert out.strip() == b"written", err.decode()
    store = EmbeddedDocumentStore(tmp_path)  # the dead process's lock died with it
    try:
        docs = await store.collection("d", "c").find()
        assert [d["_id"] for d in docs] == list(range(1, 50))
        assert all(d["n"] == d["_id"] + 1 and isinstance(d["n"], Int64) for d in docs)
    finally:
        await store.aclose()


async def test_bad_watch_filter_is_rejected_up_front() -> None:
    store = EmbeddedDocumentStore(None)
    try:
        with pytest.raises(DocumentStoreError):
            store.collection("d", "c").watch(filter={"$nosuch": 1})
    finally:
        await store.aclose()


def test_watch_needs_a_running_loop() -> None:
    async def make() -> EmbeddedDocumentStore:
        return EmbeddedDocumentStore(None)

    store = asyncio.run(make())
    with pytest.raises(DocumentStoreError, match="running event loop"):
        store.collection("d", "c").watch()
    asyncio.run(store.aclose())


def test_unclosed_store_warns() -> None:
    store = EmbeddedDocumentStore(None)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del store
        gc.collect()
