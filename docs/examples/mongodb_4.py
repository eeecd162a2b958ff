"""Watch a collection as an Rx observable: compose it with operators, dispose to stop."""

import asyncio

from reactivex import operators as ops

from appusers import App, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        tasks = user.mongo_client("mongodb-atlas").db("todo").collection("tasks")

        titles: asyncio.Queue[str] = asyncio.Queue()
        failures: list[Exception] = []
        # Cold: nothing is opened until a subscription, and each subscription has its own stream.
        new_titles = tasks.watch_changes(filter={"operationType": "insert"}).pipe(
            ops.map(lambda change: change.full_document["title"] if change.full_document else ""),
            ops.filter(lambda title: not title.startswith("_")),
            ops.distinct_until_changed(),  # the warm-up below may write "first" more than once
        )
        subscription = new_titles.subscribe(on_next=titles.put_nowait, on_error=failures.append)

        # The stream opens in the background, after subscribe() returns; a change made before it
        # is open is not seen. Where that matters, write until the first change is heard (or use
        # `async with tasks.watch()`, which is open when the block starts).
        for _ in range(50):
            await tasks.insert_one({"owner_id": user.id, "title": "first"})
            try:
                assert await asyncio.wait_for(titles.get(), 0.2) == "first"
                break
            except TimeoutError:
                continue

        await tasks.insert_one({"owner_id": user.id, "title": "_draft"})  # filtered out above
        await tasks.insert_one({"owner_id": user.id, "title": "second"})
        assert await asyncio.wait_for(titles.get(), 10) == "second"

        subscription.dispose()  # closes the stream: nothing more arrives
        await tasks.insert_one({"owner_id": user.id, "title": "third"})
        await asyncio.sleep(0.3)
        assert titles.empty() and failures == []
        # A failure of the stream (an error event, a dropped connection, the App closing)
        # reaches on_error; an exception raised by on_next is logged and the stream goes on.
