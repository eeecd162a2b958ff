"""Watch a collection with `async for`: inserts, updates and deletes as they happen."""

import asyncio

from appusers import App, ChangeEvent, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        tasks = user.mongo_client("mongodb-atlas").db("todo").collection("tasks")

        # Entering the block opens the stream: every change made after this line is seen.
        async with tasks.watch() as changes:
            task_id = (await tasks.insert_one({"owner_id": user.id, "title": "ship"})).inserted_id
            await tasks.update_one({"_id": task_id}, {"$set": {"done": True}})
            await tasks.delete_one({"_id": task_id})

            seen: list[ChangeEvent] = []
            async with asyncio.timeout(10):  # a stream never ends by itself: bound the wait
                async for change in changes:
                    seen.append(change)
                    if change.operation_type == "delete":
                        break  # leaving the loop (or the block) closes the stream

        assert [c.operation_type for c in seen] == ["insert", "update", "delete"]
        assert all(c.document_id == task_id for c in seen)
        assert seen[0].full_document == {"_id": task_id, "owner_id": user.id, "title": "ship"}
        assert seen[1].update_description is not None
        assert seen[1].update_description["updatedFields"] == {"done": True}
        assert seen[0].namespace == {"db": "todo", "coll": "tasks"}

        # Only some changes: `filter` is a query on the change events, `ids` a list of _id values.
        async with tasks.watch(filter={"operationType": "insert", "fullDocument.urgent": True}) as urgent:
            await tasks.insert_one({"owner_id": user.id, "title": "later"})
            await tasks.insert_one({"owner_id": user.id, "title": "now", "urgent": True})
            change = await asyncio.wait_for(anext(urgent), 10)
        assert change.full_document is not None and change.full_document["title"] == "now"
