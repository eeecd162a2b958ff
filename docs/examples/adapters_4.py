"""Write your own storage and prove it with the contract suite (run this file with pytest)."""

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from appusers import App, Credentials, Storage, StorageIssue
from appusers.adapters.storage_contract import StorageContract
from appusers.errors import InvalidArgumentError


class SqliteStorage:
    """Users in one SQLite table. Each call is one short transaction (a real adapter would
    run them in a worker thread to keep the event loop free)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "SqliteStorage()"  # values hold tokens: never show them

    async def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    async def set(self, key: str, value: str) -> None:
        await self.update({key: value})

    async def remove(self, key: str) -> None:
        await self.update({key: None})

    async def update(self, changes: Mapping[str, str | None]) -> None:
        changes = dict(changes)
        for key, value in changes.items():
            if not isinstance(key, str) or not (value is None or isinstance(value, str)):
                raise InvalidArgumentError("keys must be strings and values strings or None")
        async with self._lock:
            with self._db:  # one transaction: all changes or none
                self._db.execute("BEGIN")
                for key, value in changes.items():
                    if value is None:
                        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
                    else:
                        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    async def items(self, prefix: str) -> Mapping[str, str]:
        rows = self._db.execute(
            "SELECT key, value FROM kv WHERE substr(key, 1, length(?)) = ?", (prefix, prefix)
        )
        return dict(rows.fetchall())

    def drain_issues(self) -> list[StorageIssue]:
        return []  # nothing is ever repaired


class TestSqliteStorage(StorageContract):
    """Every contract test, run against SqliteStorage."""

    @pytest.fixture
    def open_storage(self, tmp_path: Path) -> Callable[[], Storage]:
        return lambda: SqliteStorage(tmp_path / "users.sqlite3")


async def main(base_url: str, app_id: str, workdir: Path) -> None:
    storage = SqliteStorage(workdir / "users.sqlite3")
    assert isinstance(storage, Storage)
    async with App(app_id, base_url=base_url, storage=storage) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))
    async with App(app_id, base_url=base_url, storage=SqliteStorage(workdir / "users.sqlite3")) as app:
        assert list(app.all_users) == [user.id]
