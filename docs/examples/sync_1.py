"""A script with the blocking API: log in, call a function, use MongoDB, watch a stream."""

import asyncio

from appusers import Credentials, UserState
from appusers.adapters import MemoryStorage
from appusers.sync import App


def script(base_url: str, app_id: str) -> None:
    with App(app_id, base_url=base_url, storage=MemoryStorage()) as app:
        user = app.log_in(Credentials.anonymous())

        states: list[UserState] = []
        user.state_changes.subscribe(states.append)  # called on the App's own thread

        assert user.functions.sum(2, 40) == 42
        notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
        notes.insert_one({"owner_id": user.id, "text": "hello"})
        assert [n["text"] for n in notes.find({"owner_id": user.id})] == ["hello"]

        user.log_out()
        assert states == [UserState.LOGGED_IN, UserState.REMOVED]
    # The with block closed the App and stopped its thread.


async def main(base_url: str, app_id: str) -> None:
    # The docs tests run the server on their own event loop, so the script runs on a worker
    # thread here; a real script just calls script("http://127.0.0.1:9090", "appusers-local").
    await asyncio.to_thread(script, base_url, app_id)
