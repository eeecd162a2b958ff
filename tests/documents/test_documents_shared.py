"""Shared mode: two embedded stores on one directory (as two workers of one server) see each other.

Two stores in one process stand in for two processes here: each has its own SQLite
connection, memory and worker thread, which is all the sharing goes through
(tests/server/test_workers.py runs the same across real processes).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from appusers.server.documents import DocumentStoreError, EmbeddedDocumentStore, _engine
from appusers.server.documents._watch import StreamFellBehind


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedDocumentStore, EmbeddedDocumentStore]]:
    a = EmbeddedDocumentStore(tmp_path, shared=True)
    b = EmbeddedDocumentStore(tmp_path, shared=True)
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


async def _next(stream: Any) -> dict[str, Any]:
    return dict(await asyncio.wait_for(stream.__anext__(), 5))


async def test_a_write_through_one_is_read_by_the_other_at_once(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore],
) -> None:
    a, b = pair
    ca, cb = a.collection("app", "things"), b.collection("app", "things")
    assert await cb.find_one({"_id": 1}) is None  # b has looked before the write
    await ca.insert_one({"_id": 1, "n": 1})
    assert await cb.find_one({"_id": 1}) == {"_id": 1, "n": 1}
    await cb.update_one({"_id": 1}, {"$set": {"n": 2}})
    assert await ca.find_one({"_id": 1}) == {"_id": 1, "n": 2}
    await ca.delete_one({"_id": 1})
    assert await cb.count() == 0
    assert await cb.aggregate([{"$match": {}}]) == []


async def test_concurrent_writes_through_both_lose_nothing(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore],
) -> None:
    a, b = pair
    await a.collection("app", "c").insert_one({"_id": "n", "v": 0})
    await asyncio.gather(
        *(s.collection("app", "c").update_one({"_id": "n"}, {"$inc": {"v": 1}}) for s in (a, b) * 100)
    )
    for s in (a, b):
        assert await s.collection("app", "c").find_one({"_id": "n"}) == {"_id": "n", "v": 200}


async def test_an_id_taken_through_one_is_a_duplicate_through_the_other(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore],
) -> None:
    a, b = pair
    await a.collection("app", "c").insert_one({"_id": 7})
    with pytest.raises(DocumentStoreError, match="duplicate key"):
        await b.collection("app", "c").insert_one({"_id": 7, "other": True})
    # The refused write released the write lock: the other store still writes.
    await a.collection("app", "c").insert_one({"_id": 8})
    assert await b.collection("app", "c").count() == 2


async def test_a_watch_on_one_receives_the_writes_of_the_other_in_commit_order(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore],
) -> None:
    a, b = pair
    ca = a.collection("app", "w")
    stream = b.collection("app", "w").watch(pre_images=True)
    await ca.insert_one({"_id": 1, "x": {"y": 1}, "keep": True})
    await ca.update_one({"_id": 1}, {"$set": {"x.y": 2}, "$unset": {"keep": ""}})
    await ca.find_one_and_replace({"_id": 1}, {"z": 1})
    await ca.delete_one({"_id": 1})
    # Nothing else happens on b: its poller delivers these.
    insert, update, replace, delete = [await _next(stream) for _ in range(4)]
    assert insert["operationType"] == "insert"
    assert insert["fullDocument"] == {"_id": 1, "x": {"y": 1}, "keep": True}
    assert update["operationType"] == "update"
    assert update["updateDescription"] == {"updatedFields": {"x.y": 2}, "removedFields": ["keep"]}
    assert update["fullDocumentBeforeChange"] == {"_id": 1, "x": {"y": 1}, "keep": True}
    assert replace["operationType"] == "replace" and replace["fullDocument"] == {"_id": 1, "z": 1}
    assert delete["operationType"] == "delete" and delete["documentKey"] == {"_id": 1}
    assert delete["fullDocumentBeforeChange"] == {"_id": 1, "z": 1}
    await stream.aclose()


async def test_an_index_built_on_one_follows_the_writes_of_the_other(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore],
) -> None:
    a, b = pair
    docs = [{"_id": i, "owner": f"u{i % 40}"} for i in range(80)]
    await a.collection("app", "i").insert_many(docs)
    assert len(await b.collection("app", "i").find({"owner": "u3"})) == 2  # builds b's index
    await a.collection("app", "i").update_many({"owner": "u3"}, {"$set": {"owner": "u4"}})
    assert await b.collection("app", "i").find({"owner": "u3"}) == []
    assert len(await b.collection("app", "i").find({"owner": "u4"})) == 4


async def test_a_store_fallen_behind_the_pruned_log_reloads_and_ends_its_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_engine, "CHANGES_KEPT", 3)
    monkeypatch.setattr(_engine, "_PRUNE_EVERY", 1)
    monkeypatch.setattr("appusers.server.documents._embedded.POLL_INTERVAL", 3600.0)  # b never polls
    a = EmbeddedDocumentStore(tmp_path, shared=True)
    b = EmbeddedDocumentStore(tmp_path, shared=True)
    try:
        stream = b.collection("app", "p").watch()
        for i in range(10):
            await a.collection("app", "p").insert_one({"_id": i})
        # b missed rows that are gone: it reloads (so it reads the truth) and says events were lost.
        assert await b.collection("app", "p").count() == 10
        with pytest.raises(StreamFellBehind):
            await _next(stream)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_shared_store_needs_a_directory() -> None:
    with pytest.raises(ValueError, match="directory"):
        EmbeddedDocumentStore(None, shared=True)


async def test_the_write_version_changes_with_the_writes_of_the_other(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore],
) -> None:
    # The server caches custom data under this number: another worker's write must change it
    # before this store has caught up with that write.
    a, b = pair
    before = b.write_version("app", "cd")
    await a.collection("app", "cd").insert_one({"_id": 1})
    after = b.write_version("app", "cd")
    assert after != before
    await b.collection("app", "cd").update_one({"_id": 1}, {"$set": {"x": 1}})
    assert b.write_version("app", "cd") != after


def _commit_elsewhere(path: Path) -> None:
    """A commit by another connection, as another worker process would make it."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("CREATE TABLE another_process_was_here (x)")
    finally:
        other.close()


async def test_the_write_version_is_looked_up_once_per_loop_iteration(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore], tmp_path: Path
) -> None:
    # One query per iteration, not per call: a commit made during an iteration shows from the
    # next one on, which is before any request sent after that commit is handled.
    _a, b = pair
    await asyncio.sleep(0)
    first = b.write_version("app", "cd")
    _commit_elsewhere(tmp_path / "documents.sqlite3")
    assert b.write_version("app", "cd") == first
    await asyncio.sleep(0)
    assert b.write_version("app", "cd") != first


async def test_the_write_version_off_the_loop_is_looked_up_every_time(
    pair: tuple[EmbeddedDocumentStore, EmbeddedDocumentStore], tmp_path: Path
) -> None:
    _a, b = pair

    def in_a_thread() -> tuple[int, int]:
        first = b.write_version("app", "cd")
        _commit_elsewhere(tmp_path / "documents.sqlite3")
        return first, b.write_version("app", "cd")

    first, second = await asyncio.to_thread(in_a_thread)
    assert second != first
