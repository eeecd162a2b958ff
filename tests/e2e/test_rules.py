"""Rules, end to end through the SDK: a second user (anonymous included) against the first one's
data, directly and through every way around a rule (issue 8's "Why", and more).

The e2e server runs the default (demo) rules: each user reads and writes only their own
custom-data document and, elsewhere, only documents whose ``owner_id`` is their id.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from appusers import App, Credentials, User
from appusers.errors import ServiceError

from ._helpers import email_user

TIMEOUT = 5.0


def notes(user: User) -> Any:
    return user.mongo_client("mongodb-atlas").db("private").collection("notes")


async def denied(coro: Any, code: str = "NoMatchingRuleFound", status: int = 403) -> str:
    with pytest.raises(ServiceError) as info:
        await coro
    assert (info.value.error_code, info.value.status) == (code, status)
    return str(info.value)


@pytest.fixture
async def ana(app: App, server: Any) -> User:
    return await email_user(app, server, "ana@example.com")


@pytest.fixture
async def bob(app: App, ana: User) -> User:
    return await app.log_in(Credentials.anonymous())


async def test_issue8_b_can_neither_read_nor_overwrite_a_private_note(ana: User, bob: User) -> None:
    note_id = (await notes(ana).insert_one({"owner_id": ana.id, "secret": "A's diary"})).inserted_id
    theirs = notes(bob)
    assert await theirs.find({}) == []
    assert await theirs.find_one({"_id": note_id}) is None
    assert await theirs.count({}) == 0
    assert await theirs.aggregate([{"$match": {}}]) == []
    result = await theirs.update_one({"_id": note_id}, {"$set": {"secret": "overwritten"}})
    assert (result.matched_count, result.modified_count) == (0, 0)
    assert (await theirs.update_many({}, {"$set": {"secret": "overwritten"}})).matched_count == 0
    assert await theirs.find_one_and_update({"_id": note_id}, {"$set": {"secret": "x"}}) is None
    assert await theirs.find_one_and_replace({"_id": note_id}, {"owner_id": bob.id}) is None
    assert await theirs.find_one_and_delete({"_id": note_id}) is None
    assert (await theirs.delete_one({"_id": note_id})).deleted_count == 0
    assert (await theirs.delete_many({})).deleted_count == 0
    assert await notes(ana).find({}) == [{"_id": note_id, "owner_id": ana.id, "secret": "A's diary"}]


async def test_issue8_b_cannot_write_role_admin_into_a_custom_data(ana: User, bob: User) -> None:
    await ana.functions.set_custom_data({"role": "user"})
    assert (await ana.refresh_custom_data())["role"] == "user"
    custom = bob.mongo_client("mongodb-atlas").db("appusers").collection("custom_data")
    assert await custom.find({}) == []
    result = await custom.update_one({"user_id": ana.id}, {"$set": {"role": "admin"}})
    assert result.matched_count == 0
    assert (await custom.update_many({}, {"$set": {"role": "admin"}})).matched_count == 0
    # An upsert would create a second document for ana: an insert the rules refuse.
    message = await denied(custom.update_one({"user_id": ana.id}, {"$set": {"role": "admin"}}, upsert=True))
    assert "insert not permitted" in message
    await denied(custom.insert_one({"user_id": ana.id, "role": "admin"}))
    await denied(custom.find_one_and_update({"user_id": ana.id}, {"$set": {"role": "admin"}}, upsert=True))
    assert (await ana.refresh_custom_data())["role"] == "user"
    # ana herself may still change her own document.
    own = ana.mongo_client("mongodb-atlas").db("appusers").collection("custom_data")
    assert (await own.update_one({"user_id": ana.id}, {"$set": {"theme": "dark"}})).modified_count == 1


async def test_inserts_and_root_moves_are_checked_before_and_after(ana: User, bob: User) -> None:
    await denied(notes(bob).insert_one({"owner_id": ana.id, "text": "planted"}))
    await denied(notes(bob).insert_one({"text": "no owner"}))
    # insertMany is all or nothing.
    await denied(notes(bob).insert_many([{"owner_id": bob.id}, {"owner_id": ana.id}]))
    assert await notes(bob).find({}) == []
    mine = (await notes(bob).insert_one({"owner_id": bob.id, "n": 1})).inserted_id
    # Moving a document out of one's own permission (giving it away) is refused...
    assert "update not permitted" in await denied(
        notes(bob).update_one({"_id": mine}, {"$set": {"owner_id": ana.id}})
    )
    await denied(notes(bob).find_one_and_replace({"_id": mine}, {"owner_id": ana.id}))
    assert await notes(bob).find_one({"_id": mine}) == {"_id": mine, "owner_id": bob.id, "n": 1}
    # ... and taking one in: ana's document is not there for bob to match.
    theirs = (await notes(ana).insert_one({"owner_id": ana.id})).inserted_id
    assert (await notes(bob).update_one({"_id": theirs}, {"$set": {"owner_id": bob.id}})).matched_count == 0


async def test_update_many_is_all_or_nothing(ana: User) -> None:
    coll = notes(ana)
    await coll.insert_many([{"owner_id": ana.id, "k": 1}, {"owner_id": ana.id, "k": 2, "alt": "x"}])
    # The first document may change; the second would leave ana's permission: neither changes.
    await denied(coll.update_many({}, {"$set": {"touched": True}, "$rename": {"alt": "owner_id"}}))
    docs = await coll.find({})
    assert sorted(d["k"] for d in docs) == [1, 2] and not any("touched" in d for d in docs)


async def test_operators_and_stages_refused_for_app_users(ana: User) -> None:
    coll = notes(ana)
    await coll.insert_one({"owner_id": ana.id, "text": "hello"})
    for stage in (
        {"$lookup": {"from": "custom_data", "localField": "x", "foreignField": "y", "as": "z"}},
        {"$unionWith": {"coll": "other"}},
        {
            "$graphLookup": {
                "from": "n",
                "startWith": "$x",
                "connectFromField": "x",
                "connectToField": "y",
                "as": "g",
            }
        },
        {"$out": "copy"},
        {"$merge": {"into": "copy"}},
        {"$facet": {"a": [{"$match": {}}]}},
    ):
        await denied(coll.aggregate([{"$match": {}}, stage]), "ArgumentsNotAllowed", 400)
    for query in ({"$where": "true"}, {"text": {"$regex": "h"}}, {"$expr": {"$eq": [1, 1]}}):
        await denied(coll.find(query), "ArgumentsNotAllowed", 400)
        await denied(coll.update_many(query, {"$set": {"owner_id": "x"}}), "ArgumentsNotAllowed", 400)
    # Allowed operators work as usual.
    assert len(await coll.find({"text": {"$in": ["hello"]}, "owner_id": {"$exists": True}})) == 1


async def test_watch_sends_only_readable_events(ana: User, bob: User) -> None:
    stream = notes(bob).watch()
    events = stream.__aiter__()
    first = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0)  # the stream opens on first iteration
    theirs = (await notes(ana).insert_one({"owner_id": ana.id, "secret": "s"})).inserted_id
    await notes(ana).update_one({"_id": theirs}, {"$set": {"secret": "t"}})
    await notes(ana).delete_one({"_id": theirs})
    mine = (await notes(bob).insert_one({"owner_id": bob.id, "text": "mine"})).inserted_id
    try:
        event = await asyncio.wait_for(first, TIMEOUT)
        assert event.operation_type == "insert" and event.document_key == {"_id": mine}
    finally:
        first.cancel()
        await stream.aclose()


async def test_unknown_object_ids_and_types_change_nothing(ana: User, bob: User) -> None:
    assert await notes(bob).find({"_id": ObjectId()}) == []
    assert (await notes(bob).delete_many({"owner_id": {"$ne": bob.id}})).deleted_count == 0
