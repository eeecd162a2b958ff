"""What the App writes to its storage: one record per changed user, the user index (which lists
every user) only when the list or the current user changed (issue 11 item 3)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appusers import Credentials
from appusers.adapters import SQLiteStorage
from appusers.storage import StorageIssue

from ._helpers import email_user


class RecordingStorage:
    """A real SQLiteStorage that remembers the keys of every update."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteStorage(path)
        self.updates: list[set[str]] = []

    async def get(self, key: str) -> str | None:
        return await self.inner.get(key)

    async def set(self, key: str, value: str) -> None:
        self.updates.append({key})
        await self.inner.set(key, value)

    async def remove(self, key: str) -> None:
        self.updates.append({key})
        await self.inner.remove(key)

    async def update(self, changes: Mapping[str, str | None]) -> None:
        self.updates.append(set(changes))
        await self.inner.update(changes)

    async def items(self, prefix: str) -> Mapping[str, str]:
        return await self.inner.items(prefix)

    def drain_issues(self) -> list[StorageIssue]:
        return self.inner.drain_issues()

    async def aclose(self) -> None:
        await self.inner.aclose()


def _index_keys(update: set[str]) -> set[str]:
    return {key for key in update if ":user:" not in key}


async def test_a_token_refresh_writes_one_record_and_not_the_index(
    make_app: Any, server: Any, tmp_path: Path
) -> None:
    storage = RecordingStorage(tmp_path / "users.sqlite3")
    app = await make_app(storage=storage)
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    assert all(_index_keys(update) for update in storage.updates)  # each log-in changed the list

    storage.updates.clear()
    await ana.refresh_access_token()
    await bob.refresh_custom_data()
    assert storage.updates, "the refreshed tokens were not saved"
    for update in storage.updates:
        assert not _index_keys(update), update  # the list and the current user did not change
        assert len(update) == 1

    storage.updates.clear()
    app.switch_user(ana)
    await app.aclose()  # lets the background save of the switch land
    assert any(_index_keys(update) for update in storage.updates), storage.updates

    # A fresh App over the same file sees the same users in the same order, and the current one.
    again = await make_app(storage=SQLiteStorage(tmp_path / "users.sqlite3"))
    assert list(again.all_users) == [ana.id, bob.id]
    assert again.current_user is not None and again.current_user.id == ana.id
    assert again.all_users[ana.id].access_token == ana.access_token


async def test_records_without_an_index_entry_still_come_back(
    make_app: Any, server: Any, tmp_path: Path
) -> None:
    # A record saved after the index (the index write is skipped when nothing in it changed)
    # is still restored even if the index on disk is an older one.
    storage = RecordingStorage(tmp_path / "users.sqlite3")
    app = await make_app(storage=storage)
    first = await app.log_in(Credentials.anonymous())
    index_key = next(iter(_index_keys(storage.updates[-1])))
    old_index = await storage.inner.get(index_key)
    second = await email_user(app, server, "cy@example.com")
    await app.aclose()
    assert old_index is not None
    await storage.inner.set(index_key, old_index)  # as if the index write had been lost
    again = await make_app(storage=SQLiteStorage(tmp_path / "users.sqlite3"))
    assert set(again.all_users) == {first.id, second.id}
    assert list(again.all_users) == [first.id, second.id]

