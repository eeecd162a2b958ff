"""RuledCollection on the embedded store, without HTTP: concurrency, atomicity, watch images."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from appusers.server.documents import EmbeddedDocumentStore
from appusers.server.rules import FieldRule, NamespaceRule, Role, RuleBook, RuleDenied, RuleEnforcer

ANA = {"id": "a" * 24, "type": "normal", "data": {}, "custom_data": {}, "identities": []}
BOB = {"id": "b" * 24, "type": "normal", "data": {}, "custom_data": {}, "identities": []}
RULES = RuleBook(
    rules=(
        NamespaceRule(
            database="d",
            collection="c",
            roles=(
                Role(
                    name="owner",
                    apply_when={"owner_id": "%%user.id"},
                    fields={"private": FieldRule(read=False, write=False)},
                    additional_fields=FieldRule(read=True, write=True),
                ),
            ),
        ),
    )
)


@pytest.fixture
async def store() -> AsyncIterator[EmbeddedDocumentStore]:
    store = EmbeddedDocumentStore(None)
    yield store
    await store.aclose()


def ruled(store: EmbeddedDocumentStore, user: dict[str, Any], calls: list[str] | None = None) -> Any:
    async def hook(name: str, args: list[Any]) -> Any:
        if calls is not None:
            calls.append(name)
        return True

    return RuleEnforcer(RULES).collection(
        store.collection("d", "c"), service="s", database="d", collection="c", user=user, function=hook
    )


async def test_concurrent_increments_are_all_applied(store: EmbeddedDocumentStore) -> None:
    coll = ruled(store, ANA)
    doc_id = await coll.insert_one({"owner_id": ANA["id"], "n": 0})
    # Every increment is checked and applied; none is lost and none gives up.
    await asyncio.gather(*(coll.update_one({"_id": doc_id}, {"$inc": {"n": 1}}) for _ in range(60)))
    assert (await coll.find_one({"_id": doc_id}))["n"] == 60


async def test_a_refused_write_leaves_everything_unchanged(store: EmbeddedDocumentStore) -> None:
    raw = store.collection("d", "c")
    await raw.insert_many(
        [{"_id": 1, "owner_id": ANA["id"], "n": 1}, {"_id": 2, "owner_id": ANA["id"], "n": 2, "private": "p"}]
    )
    with pytest.raises(RuleDenied):
        await ruled(store, ANA).update_many({}, {"$inc": {"n": 10}, "$unset": {"private": 1}})
    assert [d["n"] for d in await raw.find({})] == [1, 2]
    with pytest.raises(RuleDenied):
        await ruled(store, ANA).delete_many({})  # deleting writes the read-only field too
    assert await raw.count({}) == 2


async def test_watch_hides_fields_and_other_users_events(store: EmbeddedDocumentStore) -> None:
    raw = store.collection("d", "c")
    stream = ruled(store, ANA).watch()
    try:
        await raw.insert_one({"_id": "b", "owner_id": BOB["id"], "x": 1})
        await raw.delete_one({"_id": "b"})
        await raw.insert_one({"_id": "a", "owner_id": ANA["id"], "private": "p", "x": 1})
        await raw.update_one({"_id": "a"}, {"$set": {"private": "q", "x": 2}, "$unset": {"gone": 1}})
        await raw.update_one({"_id": "a"}, {"$set": {"owner_id": BOB["id"]}})  # moved away: not hers
        await raw.delete_one({"_id": "a"})
        await raw.insert_one({"_id": "a2", "owner_id": ANA["id"]})
        events = [await asyncio.wait_for(stream.__anext__(), 5) for _ in range(3)]
    finally:
        await stream.aclose()
    insert, update, last = events
    assert insert["fullDocument"] == {"_id": "a", "owner_id": ANA["id"], "x": 1}
    assert update["updateDescription"]["updatedFields"] == {"x": 2}
    assert update["fullDocument"] == {"_id": "a", "owner_id": ANA["id"], "x": 2}
    assert "fullDocumentBeforeChange" not in update
    assert last["documentKey"] == {"_id": "a2"}


async def test_function_rules_are_evaluated_before_the_write(store: EmbeddedDocumentStore) -> None:
    calls: list[str] = []
    book = RuleBook(
        rules=(
            NamespaceRule(
                database="d",
                collection="c",
                roles=(
                    Role(
                        name="f", apply_when={"%%true": {"%function": {"name": "ok"}}}, read=True, write=True
                    ),
                ),
            ),
        )
    )
    coll = RuleEnforcer(book).collection(
        store.collection("d", "c"),
        service="s",
        database="d",
        collection="c",
        user=ANA,
        function=_record(calls),
    )
    doc_id = await coll.insert_one({"n": 1})
    await coll.update_one({"_id": doc_id}, {"$inc": {"n": 1}})
    assert calls and set(calls) == {"ok"}
    assert (await coll.find_one({}))["n"] == 2


def _record(calls: list[str]) -> Any:
    async def hook(name: str, args: list[Any]) -> Any:
        calls.append(name)
        await asyncio.sleep(0)  # a real function suspends
        return True

    return hook


async def _buffered(stream: Any) -> list[dict[str, Any]]:
    """Every event ``next_nowait`` hands out now, the rest through ``__anext__`` (as the SSE handler does)."""
    out: list[dict[str, Any]] = []
    while (event := stream.next_nowait()) is not None:
        out.append(event)
    return out


async def test_watch_next_nowait_filters_without_a_task_and_keeps_order(store: EmbeddedDocumentStore) -> None:
    raw = store.collection("d", "c")
    stream = ruled(store, ANA).watch()
    try:
        assert stream.next_nowait() is None  # nothing yet
        await raw.insert_one({"_id": "b", "owner_id": BOB["id"]})
        await raw.insert_one({"_id": "a", "owner_id": ANA["id"], "private": "p"})
        await raw.update_one({"_id": "a"}, {"$set": {"x": 1}})
        await asyncio.sleep(0)  # the deliveries are callbacks on this loop
        events = await _buffered(stream)
        # Bob's event is skipped, Ana's are shown with the field rules applied and no pre-image.
        assert [e["documentKey"]["_id"] for e in events] == ["a", "a"]
        assert events[0]["fullDocument"] == {"_id": "a", "owner_id": ANA["id"]}
        assert "fullDocumentBeforeChange" not in events[1]
        assert stream.next_nowait() is None
    finally:
        await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        stream.next_nowait()


async def test_watch_next_nowait_holds_an_event_whose_rule_calls_a_function(
    store: EmbeddedDocumentStore,
) -> None:
    calls: list[str] = []
    book = RuleBook(
        rules=(
            NamespaceRule(
                database="d",
                collection="c",
                roles=(Role(name="f", apply_when={"%%true": {"%function": {"name": "ok"}}}, read=True),),
            ),
        )
    )
    raw = store.collection("d", "c")
    stream = RuleEnforcer(book).collection(
        raw, service="s", database="d", collection="c", user=ANA, function=_record(calls)
    ).watch()
    try:
        await raw.insert_many([{"_id": 1}, {"_id": 2}])
        await asyncio.sleep(0)
        # The function cannot run synchronously: the event waits for __anext__, in order.
        assert stream.next_nowait() is None and not calls
        assert stream.next_nowait() is None  # still held, not skipped
        first = await asyncio.wait_for(stream.__anext__(), 5)
        second = await asyncio.wait_for(stream.__anext__(), 5)
        assert [first["documentKey"], second["documentKey"]] == [{"_id": 1}, {"_id": 2}]
        assert calls and set(calls) == {"ok"}
    finally:
        await stream.aclose()
