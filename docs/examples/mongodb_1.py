"""MongoDB CRUD through the user's MongoDB service: insert, find, update, delete, aggregate."""

from appusers import App, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        # A client holds no connection: every call below is one request, made as this user.
        tasks = user.mongo_client("mongodb-atlas").db("todo").collection("tasks")
        mine = {"owner_id": user.id}  # the demo rules: a user sees only documents it owns

        created = await tasks.insert_one({**mine, "title": "write docs", "done": False, "points": 3})
        await tasks.insert_many([
            {**mine, "title": "review", "done": False, "points": 1},
            {**mine, "title": "release", "done": False, "points": 5},
        ])

        assert await tasks.count({"done": False}) == 3
        first = await tasks.find_one({"_id": created.inserted_id}, projection={"title": 1, "_id": 0})
        assert first == {"title": "write docs"}
        biggest = await tasks.find({}, sort={"points": -1}, limit=2, projection={"title": 1, "_id": 0})
        assert biggest == [{"title": "release"}, {"title": "write docs"}]

        result = await tasks.update_one({"title": "review"}, {"$set": {"done": True}, "$inc": {"points": 1}})
        assert (result.matched_count, result.modified_count) == (1, 1)
        result = await tasks.update_many({"done": False}, {"$set": {"sprint": 7}})
        assert result.modified_count == 2
        # An upsert creates the document when nothing matches; its fields seed from the filter.
        result = await tasks.update_one(
            {**mine, "title": "retro", "done": False}, {"$set": {"points": 2}}, upsert=True
        )
        assert result.matched_count == 0 and result.upserted_id is not None

        after = await tasks.find_one_and_update(
            {"title": "release"}, {"$set": {"done": True}}, return_new_document=True
        )
        assert after is not None and after["done"] is True

        totals = await tasks.aggregate([
            {"$group": {"_id": "$done", "points": {"$sum": "$points"}}},
            {"$sort": {"_id": 1}},
        ])
        assert totals == [{"_id": False, "points": 5}, {"_id": True, "points": 7}]

        assert (await tasks.delete_one({"title": "retro"})).deleted_count == 1
        assert (await tasks.delete_many({})).deleted_count == 3  # {}: every document it may see
        assert await tasks.find() == []
