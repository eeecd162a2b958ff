"""BSON types survive the round trip: the client speaks canonical Extended JSON."""

import datetime
import uuid

from bson import Binary, Decimal128, Int64, ObjectId

from appusers import App, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        orders = user.mongo_client("mongodb-atlas").db("shop").collection("orders")

        order = {
            "_id": ObjectId(),
            "owner_id": user.id,
            "placed": datetime.datetime(2026, 1, 31, 12, 30, 15, 123000, tzinfo=datetime.UTC),
            "total": Decimal128("19.90"),        # exact decimal, not a float
            "views": Int64(2**40),               # 64-bit; a plain int beyond 32 bits is sent as Int64 too
            "weight": 1.25,                      # double
            "items": 3,                          # 32-bit int
            "receipt": b"%PDF-1.7 ...",          # binary (subtype 0), read back as bytes
            "signature": Binary(b"\x01\x02", 0x80),  # binary with a user-defined subtype
            "tracking": uuid.UUID("3f0c1b7e-1c1a-4a1e-9c4e-2b7f5d1a9e10"),  # binary subtype 4
            "tags": ["gift", None, True],
        }
        assert (await orders.insert_one(order)).inserted_id == order["_id"]

        back = await orders.find_one({"_id": order["_id"]})
        assert back == order
        for key in ("_id", "placed", "total", "views", "weight", "items", "receipt", "signature", "tracking"):
            assert type(back[key]) is type(order[key]), key
        assert back["placed"].tzinfo is not None  # datetimes come back timezone-aware, in UTC

        # Typed values work in queries too: compare decimals, 64-bit ints and dates as MongoDB does.
        assert await orders.count({"total": {"$gte": Decimal128("10")}, "views": {"$gt": Int64(2**39)}}) == 1
        since = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        assert await orders.count({"placed": {"$gte": since}, "tracking": order["tracking"]}) == 1

        # An id the server made is an ObjectId; a plain int beyond 32 bits comes back as Int64.
        made = await orders.insert_one({"owner_id": user.id, "views": 2**40})
        assert isinstance(made.inserted_id, ObjectId)
        again = await orders.find_one({"_id": made.inserted_id})
        assert again is not None and type(again["views"]) is Int64 and again["views"] == 2**40
