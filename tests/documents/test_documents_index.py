"""Equality indexes never change a result: indexed answers equal a full scan, through writes."""

from __future__ import annotations

import random
from typing import Any

from bson import Decimal128, Int64, ObjectId

from appusers.server.documents import EmbeddedDocumentStore
from appusers.server.documents._codec import to_view
from appusers.server.documents._matching import matches, prepare_filter

OIDS = [ObjectId() for _ in range(3)]
VALUES: list[Any] = [
    0,
    1,
    2,
    1.0,
    2.5,
    Int64(1),
    Decimal128("1"),
    Decimal128("2.5"),
    "1",
    "x",
    True,
    False,
    None,
    *OIDS,
]


def _random_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.15:
        return [rng.choice(VALUES) for _ in range(rng.randint(0, 3))]
    if roll < 0.2:
        return {"k": rng.choice(VALUES)}
    return rng.choice(VALUES)


def _random_doc(rng: random.Random, i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": i}
    for field in ("a", "b"):
        if rng.random() < 0.85:
            doc[field] = _random_value(rng)
    return doc


async def test_indexed_queries_equal_full_scans_through_writes() -> None:
    rng = random.Random(20240611)
    store = EmbeddedDocumentStore(None)
    coll = store.collection("d", "c")
    shadow: dict[int, dict[str, Any]] = {}
    try:
        docs = [_random_doc(rng, i) for i in range(200)]
        await coll.insert_many(docs)
        shadow.update({d["_id"]: d for d in docs})
        queries = [{"a": v} for v in VALUES] + [
            {"a": {"$eq": v}, "b": w} for v in VALUES[:6] for w in VALUES[6:12]
        ]
        for round_ in range(4):
            for query in queries:
                expected = [i for i, d in shadow.items() if matches(prepare_filter(query), to_view(d))]
                got = [d["_id"] for d in await coll.find(query)]
                assert got == expected, (round_, query)
            # Writes between rounds: the indexes must follow them.
            for _ in range(40):
                i = rng.randrange(400)
                action = rng.random()
                if action < 0.4 and i in shadow:
                    value = _random_value(rng)
                    await coll.update_one({"_id": i}, {"$set": {"a": value}})
                    shadow[i]["a"] = value
                elif action < 0.6 and i in shadow:
                    await coll.delete_one({"_id": i})
                    del shadow[i]
                elif action < 0.8 and i in shadow:
                    await coll.update_one({"_id": i}, {"$unset": {"a": ""}})
                    shadow[i].pop("a", None)
                elif i not in shadow:
                    doc = _random_doc(rng, i)
                    await coll.insert_one(doc)
                    shadow[i] = doc
        # The shadow dict's order is insertion order, like the store's natural order (re-inserts go last).
        assert [d["_id"] for d in await coll.find()] == list(shadow)
    finally:
        await store.aclose()
