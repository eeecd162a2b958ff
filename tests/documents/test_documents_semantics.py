"""MongoDB query, update, projection, sort and aggregation semantics of the embedded store (table-driven).

Expected values are what a MongoDB 7 server returns for the same operation.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId, Regex, Timestamp

from appusers.server.documents import DocumentStoreError, EmbeddedDocumentStore, UpdateResult

DOCS: list[dict[str, Any]] = [
    {
        "_id": 1,
        "a": 1,
        "b": "x",
        "tags": ["red", "blue"],
        "n": {"v": 5},
        "arr": [{"k": 1, "v": 10}, {"k": 2, "v": 20}],
        "grades": [80, 95],
    },
    {
        "_id": 2,
        "a": 2,
        "b": "y",
        "tags": ["green"],
        "n": {"v": 7},
        "arr": [{"k": 1, "v": 30}],
        "grades": [70],
    },
    {"_id": 3, "a": 3, "tags": [], "n": {"v": None}, "arr": [], "price": Decimal128("9.99")},
]


@pytest.fixture
async def coll() -> AsyncIterator[Any]:
    store = EmbeddedDocumentStore(None)
    c = store.collection("db", "c")
    await c.insert_many(copy.deepcopy(DOCS))
    yield c
    await store.aclose()


QUERIES = [
    ("implicit $eq", {"a": 1}, [1]),
    ("$eq", {"b": {"$eq": "y"}}, [2]),
    ("$gt $lte", {"a": {"$gt": 1, "$lte": 3}}, [2, 3]),
    ("$gte $lt", {"a": {"$gte": 2, "$lt": 3}}, [2]),
    ("$ne includes missing", {"b": {"$ne": "x"}}, [2, 3]),
    ("$in", {"a": {"$in": [1, 3]}}, [1, 3]),
    ("$nin", {"b": {"$nin": ["x"]}}, [2, 3]),
    ("$in with regex", {"b": {"$in": [re.compile("^y")]}}, [2]),
    ("$and", {"$and": [{"a": {"$gt": 1}}, {"b": "y"}]}, [2]),
    ("$or", {"$or": [{"a": 1}, {"b": "y"}]}, [1, 2]),
    ("$nor", {"$nor": [{"a": 1}, {"b": "y"}]}, [3]),
    ("$not", {"a": {"$not": {"$gt": 1}}}, [1]),
    ("$exists true", {"b": {"$exists": True}}, [1, 2]),
    ("$exists false", {"b": {"$exists": False}}, [3]),
    ("$type string", {"b": {"$type": "string"}}, [1, 2]),
    ("$regex $options", {"b": {"$regex": "^X", "$options": "i"}}, [1]),
    ("re.Pattern", {"b": re.compile("y")}, [2]),
    ("bson Regex", {"b": Regex("^x")}, [1]),
    ("dotted path", {"n.v": {"$gte": 6}}, [2]),
    ("null matches null and missing", {"n.v": None}, [3]),
    ("missing field equals null", {"b": None}, [3]),
    ("array contains scalar", {"tags": "blue"}, [1]),
    ("whole array equality", {"tags": ["green"]}, [2]),
    ("array of documents, dotted", {"arr.v": 30}, [2]),
    ("array element range (any element)", {"grades": {"$gt": 90}}, [1]),
    ("$elemMatch documents", {"arr": {"$elemMatch": {"k": 1, "v": {"$gt": 15}}}}, [2]),
    ("$elemMatch scalars", {"grades": {"$elemMatch": {"$gte": 75, "$lt": 85}}}, [1]),
    ("$all", {"tags": {"$all": ["blue", "red"]}}, [1]),
    ("$size", {"tags": {"$size": 0}}, [3]),
    ("$size 2", {"tags": {"$size": 2}}, [1]),
    ("array index path", {"tags.0": "green"}, [2]),
    ("Decimal128 comparison", {"price": {"$gt": Decimal128("5")}}, [3]),
    ("Decimal128 vs int", {"price": {"$lt": 10}}, [3]),
    ("_id equality fast path", {"_id": 2}, [2]),
    ("_id numeric equivalence", {"_id": 2.0}, [2]),
    ("_id $in", {"_id": {"$in": [1, 3]}}, [1, 3]),
    ("_id $eq", {"_id": {"$eq": 3}}, [3]),
    ("_id $gt", {"_id": {"$gt": 1}}, [2, 3]),
    ("empty filter", {}, [1, 2, 3]),
]


@pytest.mark.parametrize(("name", "query", "expected"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_query(coll: Any, name: str, query: dict[str, Any], expected: list[int]) -> None:
    assert sorted(d["_id"] for d in await coll.find(query)) == expected
    assert await coll.count(query) == len(expected)


UPDATES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # name, filter, update, kwargs, expected subset of the updated document
    ("$set new + dotted", {"_id": 1}, {"$set": {"z": 2, "n.w": 1}}, {}, {"z": 2, "n": {"v": 5, "w": 1}}),
    ("$set creates path", {"_id": 1}, {"$set": {"p.q.r": 1}}, {}, {"p": {"q": {"r": 1}}}),
    ("$set array index", {"_id": 1}, {"$set": {"tags.1": "pink"}}, {}, {"tags": ["red", "pink"]}),
    ("$unset", {"_id": 1}, {"$unset": {"b": "", "n.v": ""}}, {}, {"n": {}}),
    ("$inc", {"_id": 1}, {"$inc": {"a": 2, "new": -1}}, {}, {"a": 3, "new": -1}),
    ("$inc float", {"_id": 1}, {"$inc": {"a": 0.5}}, {}, {"a": 1.5}),
    ("$mul", {"_id": 1}, {"$mul": {"n.v": 3, "zz": 2}}, {}, {"n": {"v": 15}, "zz": 0}),
    ("$min lowers", {"_id": 1}, {"$min": {"a": 0}}, {}, {"a": 0}),
    ("$min keeps", {"_id": 1}, {"$min": {"a": 5}}, {}, {"a": 1}),
    ("$max raises", {"_id": 1}, {"$max": {"n.v": 99}}, {}, {"n": {"v": 99}}),
    ("$rename", {"_id": 1}, {"$rename": {"b": "bb", "n.v": "n.w"}}, {}, {"bb": "x", "n": {"w": 5}}),
    ("$push", {"_id": 1}, {"$push": {"tags": "z"}}, {}, {"tags": ["red", "blue", "z"]}),
    ("$push creates", {"_id": 1}, {"$push": {"fresh": 1}}, {}, {"fresh": [1]}),
    (
        "$push $each $position",
        {"_id": 1},
        {"$push": {"tags": {"$each": ["a", "z"], "$position": 0}}},
        {},
        {"tags": ["a", "z", "red", "blue"]},
    ),
    (
        "$push $each $sort $slice",
        {"_id": 1},
        {"$push": {"tags": {"$each": ["a", "z"], "$sort": 1, "$slice": 3}}},
        {},
        {"tags": ["a", "blue", "red"]},
    ),
    (
        "$push $sort by field, negative $slice",
        {"_id": 1},
        {"$push": {"arr": {"$each": [{"k": 3, "v": 5}], "$sort": {"v": -1}, "$slice": -2}}},
        {},
        {"arr": [{"k": 1, "v": 10}, {"k": 3, "v": 5}]},
    ),
    ("$addToSet", {"_id": 1}, {"$addToSet": {"tags": "red"}}, {}, {"tags": ["red", "blue"]}),
    (
        "$addToSet $each",
        {"_id": 1},
        {"$addToSet": {"tags": {"$each": ["red", "new", "new"]}}},
        {},
        {"tags": ["red", "blue", "new"]},
    ),
    ("$pull value", {"_id": 1}, {"$pull": {"tags": "red"}}, {}, {"tags": ["blue"]}),
    ("$pull condition", {"_id": 1}, {"$pull": {"grades": {"$gt": 90}}}, {}, {"grades": [80]}),
    ("$pull documents", {"_id": 1}, {"$pull": {"arr": {"v": {"$gt": 15}}}}, {}, {"arr": [{"k": 1, "v": 10}]}),
    ("$pullAll", {"_id": 1}, {"$pullAll": {"tags": ["red", "blue"]}}, {}, {"tags": []}),
    ("$pop last", {"_id": 1}, {"$pop": {"tags": 1}}, {}, {"tags": ["red"]}),
    ("$pop first", {"_id": 1}, {"$pop": {"tags": -1}}, {}, {"tags": ["blue"]}),
    (
        "positional $",
        {"_id": 1, "arr.k": 2},
        {"$set": {"arr.$.v": 99}},
        {},
        {"arr": [{"k": 1, "v": 10}, {"k": 2, "v": 99}]},
    ),
    (
        "positional $ scalar array",
        {"_id": 1, "tags": "blue"},
        {"$set": {"tags.$": "navy"}},
        {},
        {"tags": ["red", "navy"]},
    ),
    (
        "positional $ via $elemMatch",
        {"_id": 1, "arr": {"$elemMatch": {"v": {"$gte": 20}}}},
        {"$inc": {"arr.$.v": 1}},
        {},
        {"arr": [{"k": 1, "v": 10}, {"k": 2, "v": 21}]},
    ),
    (
        "all positional $[]",
        {"_id": 1},
        {"$inc": {"arr.$[].v": 1}},
        {},
        {"arr": [{"k": 1, "v": 11}, {"k": 2, "v": 21}]},
    ),
    (
        "filtered positional $[e]",
        {"_id": 1},
        {"$set": {"arr.$[e].v": 0}},
        {"array_filters": [{"e.k": 2}]},
        {"arr": [{"k": 1, "v": 10}, {"k": 2, "v": 0}]},
    ),
    (
        "filtered positional on scalars",
        {"_id": 1},
        {"$set": {"grades.$[g]": 100}},
        {"array_filters": [{"g": {"$gte": 90}}]},
        {"grades": [80, 100]},
    ),
    ("replacement keeps _id", {"_id": 2}, {"only": True}, {}, {"only": True}),
]


@pytest.mark.parametrize(
    ("name", "flt", "update", "kwargs", "expected"), UPDATES, ids=[u[0] for u in UPDATES]
)
async def test_update(
    coll: Any,
    name: str,
    flt: dict[str, Any],
    update: dict[str, Any],
    kwargs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    result = await coll.update_one(flt, update, **kwargs)
    no_op = name in ("$min keeps", "$addToSet")
    assert result == UpdateResult(1, 0 if no_op else 1, None)
    doc = await coll.find_one({"_id": flt["_id"]})
    for key, value in expected.items():
        assert doc.get(key) == value, key
    if name == "replacement keeps _id":
        assert doc == {"_id": 2, "only": True}
    if name == "$unset":
        assert "b" not in doc


async def test_addtoset_uses_mongodb_equality(coll: Any) -> None:
    assert (await coll.update_one({"_id": 1}, {"$addToSet": {"grades": 80.0}})).modified_count == 0
    assert (await coll.update_one({"_id": 1}, {"$addToSet": {"arr": {"k": 1, "v": 10}}})).modified_count == 0
    # Field order matters for documents, as in MongoDB.
    assert (await coll.update_one({"_id": 1}, {"$addToSet": {"arr": {"v": 10, "k": 1}}})).modified_count == 1
    assert (await coll.update_one({"_id": 1}, {"$pullAll": {"grades": [95.0]}})).modified_count == 1
    assert (await coll.find_one({"_id": 1}))["grades"] == [80]


async def test_currentdate_and_setoninsert(coll: Any) -> None:
    await coll.update_one({"_id": 1}, {"$currentDate": {"t": True, "ts": {"$type": "timestamp"}}})
    doc = await coll.find_one({"_id": 1})
    assert isinstance(doc["t"], datetime.datetime) and doc["t"].microsecond % 1000 == 0
    assert isinstance(doc["ts"], Timestamp)
    r = await coll.update_one({"_id": 1}, {"$set": {"s": 1}, "$setOnInsert": {"created": True}}, upsert=True)
    assert r == UpdateResult(1, 1, None)
    assert "created" not in await coll.find_one({"_id": 1})


async def test_upsert_seeds_equality_fields(coll: Any) -> None:
    r = await coll.update_one(
        {"$and": [{"x": {"$eq": 5}}, {"y.z": 6}], "w": {"$gt": 1}, "k": "q"},
        {"$set": {"a": 1}, "$setOnInsert": {"c": 1}},
        upsert=True,
    )
    assert r.matched_count == 0 and r.modified_count == 0 and isinstance(r.upserted_id, ObjectId)
    doc = await coll.find_one({"_id": r.upserted_id})
    assert doc == {"_id": r.upserted_id, "x": 5, "y": {"z": 6}, "k": "q", "a": 1, "c": 1}
    r2 = await coll.update_one({"_id": "given"}, {"$inc": {"n": 1}}, upsert=True)
    assert r2.upserted_id == "given"
    assert await coll.find_one({"_id": "given"}) == {"_id": "given", "n": 1}
    r3 = await coll.update_one({"_id": 77}, {"plain": 1}, upsert=True)
    assert r3.upserted_id == 77 and await coll.find_one({"_id": 77}) == {"_id": 77, "plain": 1}


async def test_update_many_counts_and_noop(coll: Any) -> None:
    assert await coll.update_many({}, {"$set": {"a": 1}}) == UpdateResult(3, 2, None)
    assert await coll.update_many({"a": 1}, {"$set": {"a": 1}}) == UpdateResult(3, 0, None)
    assert await coll.update_one({"nope": 1}, {"$set": {"a": 1}}) == UpdateResult(0, 0, None)


BAD_UPDATES: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"_id": 1}, {"$bogus": {"a": 1}}, "unknown update operator"),
    ({"_id": 1}, {"$set": {"a": 1}, "b": 2}, "cannot mix"),
    ({"_id": 1}, {"$inc": {"b": 1}}, "non-numeric"),
    ({"_id": 1}, {"$inc": {"a": "x"}}, "non-numeric argument"),
    ({"_id": 1}, {"$set": {"a": 1}, "$inc": {"a": 1}}, "conflict"),
    ({"_id": 1}, {"$set": {"_id": 5}}, "immutable field '_id'"),
    ({"_id": 1}, {"$push": {"b": 1}}, "must be an array"),
    ({"_id": 1}, {"$set": {"b.c": 1}}, "cannot create field"),
    ({"_id": 1}, {"$set": {"arr.$.v": 1}}, "positional operator did not find"),
    ({"_id": 1}, {"$set": {"arr.$[e].v": 1}}, "no array filter"),
    ({"_id": 1}, {}, "must contain update operators"),
]


@pytest.mark.parametrize(("flt", "update", "message"), BAD_UPDATES, ids=[b[2] for b in BAD_UPDATES])
async def test_bad_updates_are_rejected_and_change_nothing(
    coll: Any, flt: dict[str, Any], update: dict[str, Any], message: str
) -> None:
    before = await coll.find({}, sort={"_id": 1})
    with pytest.raises(DocumentStoreError, match=re.escape(message)):
        await coll.update_one(flt, update)
    assert await coll.find({}, sort={"_id": 1}) == before


async def test_update_many_rejects_replacement_and_bad_queries(coll: Any) -> None:
    with pytest.raises(DocumentStoreError, match="requires update operators"):
        await coll.update_many({}, {"x": 1})
    with pytest.raises(DocumentStoreError, match="bad query"):
        await coll.find({"a": {"$nosuchop": 1}})
    with pytest.raises(DocumentStoreError, match=r"unused|not used"):
        await coll.update_one({"_id": 1}, {"$set": {"a": 1}}, array_filters=[{"e.k": 1}])


async def test_insert_ids_and_duplicates(coll: Any) -> None:
    oid = await coll.insert_one({"q": 1})
    assert isinstance(oid, ObjectId)
    doc = await coll.find_one({"_id": oid})
    assert list(doc) == ["_id", "q"]
    ids = await coll.insert_many([{"_id": "c"}, {"v": 2}, {"_id": "d"}])
    assert ids[0] == "c" and isinstance(ids[1], ObjectId) and ids[2] == "d"
    with pytest.raises(DocumentStoreError, match="E11000 duplicate key"):
        await coll.insert_one({"_id": 1})
    with pytest.raises(DocumentStoreError, match="E11000"):
        await coll.insert_one({"_id": Int64(1)})  # 1 and Int64(1) are the same _id
    with pytest.raises(DocumentStoreError, match="E11000"):
        await coll.insert_many([{"_id": "new1"}, {"_id": "new1"}])
    assert await coll.count({"_id": "new1"}) == 0  # all or none
    with pytest.raises(DocumentStoreError, match="array"):
        await coll.insert_one({"_id": [1]})
    with pytest.raises(DocumentStoreError, match="not valid BSON"):
        await coll.insert_one({"s": {1, 2}})
    with pytest.raises(DocumentStoreError, match=r"cannot start with '\$'"):
        await coll.insert_one({"$x": 1})


PROJECTIONS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"a": 1, "n.v": 1}, {"_id": 1, "a": 1, "n": {"v": 5}}),
    ({"a": 1, "_id": 0}, {"a": 1}),
    ({"arr.k": 1}, {"_id": 1, "arr": [{"k": 1}, {"k": 2}]}),
    ({"tags": 0, "arr": 0, "n": 0, "grades": 0}, {"_id": 1, "a": 1, "b": "x"}),
    ({"_id": 0, "tags": 0, "arr": 0, "n": 0, "grades": 0}, {"a": 1, "b": "x"}),
    ({"n.v": 0, "tags": 0, "arr": 0, "grades": 0, "b": 0}, {"_id": 1, "a": 1, "n": {}}),
    ({"_id": 1}, {"_id": 1}),
    ({"missing": 1}, {"_id": 1}),
]


@pytest.mark.parametrize(("projection", "expected"), PROJECTIONS)
async def test_projection(coll: Any, projection: dict[str, Any], expected: dict[str, Any]) -> None:
    assert await coll.find_one({"_id": 1}, projection=projection) == expected


async def test_projection_rejects_mixing(coll: Any) -> None:
    with pytest.raises(DocumentStoreError, match="exclusion"):
        await coll.find({}, projection={"a": 1, "b": 0})


SORTS: list[tuple[Any, list[int]]] = [
    ({"a": -1}, [3, 2, 1]),
    ([("b", -1), ("a", 1)], [2, 1, 3]),  # missing b sorts first ascending, last descending
    ({"b": 1}, [3, 1, 2]),
    ({"n.v": 1}, [3, 1, 2]),  # null < numbers
    ({"grades": -1}, [1, 2, 3]),  # arrays sort by their greatest element descending; [] lowest
    ({"grades": 1}, [3, 2, 1]),  # ... and by their least ascending
]


@pytest.mark.parametrize(("sort", "expected"), SORTS)
async def test_sort(coll: Any, sort: Any, expected: list[int]) -> None:
    assert [d["_id"] for d in await coll.find({}, sort=sort)] == expected


async def test_limit_and_count_limit(coll: Any) -> None:
    assert [d["_id"] for d in await coll.find({}, sort={"a": -1}, limit=2)] == [3, 2]
    assert len(await coll.find({}, limit=0)) == 3
    assert await coll.count({}, limit=2) == 2
    assert await coll.count({"a": {"$gt": 5}}) == 0


AGGREGATES: list[tuple[str, list[dict[str, Any]], Any]] = [
    (
        "$match $project",
        [{"$match": {"a": {"$gt": 1}}}, {"$project": {"a": 1, "_id": 0}}],
        [{"a": 2}, {"a": 3}],
    ),
    (
        "$addFields $unset $sort",
        [
            {"$addFields": {"x": {"$add": ["$a", 1]}}},
            {"$unset": ["tags", "n", "arr", "b", "grades", "price"]},
            {"$sort": {"_id": -1}},
        ],
        [{"_id": 3, "a": 3, "x": 4}, {"_id": 2, "a": 2, "x": 3}, {"_id": 1, "a": 1, "x": 2}],
    ),
    (
        "$set stage",
        [{"$match": {"_id": 1}}, {"$set": {"q": "$n.v"}}, {"$project": {"q": 1}}],
        [{"_id": 1, "q": 5}],
    ),
    ("$unset string", [{"$match": {"_id": 2}}, {"$unset": "tags"}, {"$project": {"tags": 1}}], [{"_id": 2}]),
    (
        "$sort $skip $limit",
        [{"$sort": {"a": -1}}, {"$skip": 1}, {"$limit": 1}, {"$project": {"_id": 1}}],
        [{"_id": 2}],
    ),
    (
        "$group accumulators",
        [
            {"$sort": {"_id": 1}},
            {
                "$group": {
                    "_id": None,
                    "s": {"$sum": "$a"},
                    "av": {"$avg": "$a"},
                    "mn": {"$min": "$a"},
                    "mx": {"$max": "$a"},
                    "f": {"$first": "$a"},
                    "l": {"$last": "$a"},
                    "p": {"$push": "$a"},
                    "c": {"$sum": 1},
                    "cnt": {"$count": {}},
                }
            },
        ],
        [
            {
                "_id": None,
                "s": 6,
                "av": 2.0,
                "mn": 1,
                "mx": 3,
                "f": 1,
                "l": 3,
                "p": [1, 2, 3],
                "c": 3,
                "cnt": 3,
            }
        ],
    ),
    (
        "$group by key $addToSet",
        [
            {"$unwind": "$arr"},
            {"$group": {"_id": "$arr.k", "vs": {"$addToSet": "$a"}}},
            {"$sort": {"_id": 1}},
        ],
        "by-key",
    ),
    ("$count", [{"$match": {"a": {"$gte": 2}}}, {"$count": "n"}], [{"n": 2}]),
    (
        "$unwind",
        [{"$unwind": "$tags"}, {"$project": {"tags": 1}}],
        [{"_id": 1, "tags": "red"}, {"_id": 1, "tags": "blue"}, {"_id": 2, "tags": "green"}],
    ),
    (
        "Decimal128 survives",
        [{"$match": {"_id": 3}}, {"$project": {"price": 1}}],
        [{"_id": 3, "price": Decimal128("9.99")}],
    ),
]


@pytest.mark.parametrize(("name", "pipeline", "expected"), AGGREGATES, ids=[a[0] for a in AGGREGATES])
async def test_aggregate(coll: Any, name: str, pipeline: list[dict[str, Any]], expected: Any) -> None:
    result = await coll.aggregate(pipeline)
    if expected == "by-key":
        assert [(r["_id"], sorted(r["vs"])) for r in result] == [(1, [1, 2]), (2, [1])]
    else:
        assert result == expected
        if name == "Decimal128 survives":
            assert isinstance(result[0]["price"], Decimal128)


async def test_aggregate_lookup() -> None:
    store = EmbeddedDocumentStore(None)
    try:
        users = store.collection("db", "users")
        orders = store.collection("db", "orders")
        await users.insert_many([{"_id": 1, "name": "ann"}, {"_id": 2, "name": "bob"}])
        await orders.insert_many([{"_id": 10, "user": 1}, {"_id": 11, "user": 1}, {"_id": 12, "user": 2}])
        out = await users.aggregate(
            [
                {"$match": {"_id": 1}},
                {"$lookup": {"from": "orders", "localField": "_id", "foreignField": "user", "as": "orders"}},
            ]
        )
        assert out == [{"_id": 1, "name": "ann", "orders": [{"_id": 10, "user": 1}, {"_id": 11, "user": 1}]}]
        assert await orders.count() == 3  # $lookup read, never changed, the other collection
    finally:
        await store.aclose()


async def test_aggregate_rejects_bad_pipelines(coll: Any) -> None:
    with pytest.raises(DocumentStoreError):
        await coll.aggregate([{"$nosuchstage": {}}])
    with pytest.raises(DocumentStoreError):
        await coll.aggregate([{"$match": {}, "$limit": 1}])
    with pytest.raises(DocumentStoreError, match="not supported"):
        await coll.aggregate([{"$out": "x"}])


async def test_find_one_and_family(coll: Any) -> None:
    pre = await coll.find_one_and_update({"a": {"$gte": 2}}, {"$inc": {"a": 10}}, sort={"a": -1})
    assert pre["_id"] == 3 and pre["a"] == 3
    post = await coll.find_one_and_update(
        {"_id": 2}, {"$inc": {"a": 10}}, projection={"a": 1, "_id": 0}, return_new=True
    )
    assert post == {"a": 12}
    assert await coll.find_one_and_update({"_id": 99}, {"$set": {"a": 1}}) is None
    assert await coll.find_one_and_update({"_id": 99}, {"$set": {"a": 1}}, upsert=True) is None
    assert await coll.find_one_and_update({"_id": 98}, {"$set": {"a": 1}}, upsert=True, return_new=True) == {
        "_id": 98,
        "a": 1,
    }
    replaced = await coll.find_one_and_replace({"_id": 1}, {"r": 1}, return_new=True)
    assert replaced == {"_id": 1, "r": 1}
    with pytest.raises(DocumentStoreError, match="cannot contain update operators"):
        await coll.find_one_and_replace({"_id": 1}, {"$set": {"r": 2}})
    deleted = await coll.find_one_and_delete({}, sort={"a": -1}, projection={"a": 1})
    assert deleted == {"_id": 3, "a": 13}
    assert await coll.count({"_id": 3}) == 0
    assert await coll.find_one_and_delete({"_id": 3}) is None


async def test_delete(coll: Any) -> None:
    assert await coll.delete_one({"a": {"$gte": 1}}) == 1
    assert await coll.count() == 2
    assert await coll.delete_many({"a": {"$gte": 1}}) == 2
    assert await coll.delete_many({}) == 0


async def test_returned_documents_are_copies(coll: Any) -> None:
    doc = await coll.find_one({"_id": 1})
    doc["n"]["v"] = "mutated"
    doc["tags"].append("mutated")
    source = {"_id": 50, "nested": {"x": [1]}}
    await coll.insert_one(source)
    source["nested"]["x"].append(2)
    again = await coll.find_one({"_id": 1})
    assert again["n"] == {"v": 5} and again["tags"] == ["red", "blue"]
    assert (await coll.find_one({"_id": 50}))["nested"] == {"x": [1]}
    (await coll.aggregate([{"$match": {"_id": 1}}]))[0]["tags"].append("x")
    assert (await coll.find_one({"_id": 1}))["tags"] == ["red", "blue"]
