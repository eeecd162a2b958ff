"""SQLiteStorage: the contract, then per-row writes, damage, modes and other processes (R9, R10, S2)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

# tests/adapters is on sys.path (test_file_storage puts it there); `worker` is a fixture.
from test_file_storage import kill_writers, worker  # noqa: F401

from appusers.adapters import SQLiteStorage
from appusers.adapters._sqlite import _to_wal
from appusers.adapters.storage_contract import CANARY, StorageContract
from appusers.errors import InsecureStorageError, InvalidArgumentError, StorageError, StorageLockTimeoutError
from appusers.storage import Storage, StorageIssue


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def kinds(issues: list[StorageIssue]) -> list[str]:
    return [issue.kind for issue in issues]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "users.sqlite"


class TestSQLiteStorageContract(StorageContract):
    @pytest.fixture
    def open_storage(self, db_path: Path) -> Callable[[], Storage]:
        return lambda: SQLiteStorage(db_path)


def rows(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT key, value FROM items").fetchall())
    finally:
        db.close()


# -- format and basics ------------------------------------------------------------------


async def test_one_row_per_key_in_a_wal_database(db_path: Path) -> None:
    await SQLiteStorage(db_path).update({"b": "2", "a": "1"})
    assert rows(db_path) == {"a": "1", "b": "2"}
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x61705553
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        db.close()


async def test_a_write_changes_only_the_rows_it_names(db_path: Path) -> None:
    storage = SQLiteStorage(db_path)
    await storage.update({f"user:{i}": f"record {i}" for i in range(2000)} | {"index": "x" * 100_000})
    wal = db_path.with_name(db_path.name + "-wal")
    # An open connection keeps the WAL file from being checkpointed away when the storage's closes.
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert wal.stat().st_size == 0
        # What App._save does on a token refresh: one user's record, and an unchanged index.
        await storage.update({"user:7": "refreshed", "index": "x" * 100_000})
        # Pages written: a leaf and the path above it, not the 2,000 rows or the 100 kB index.
        assert 0 < wal.stat().st_size < 64 * 1024
    finally:
        db.close()
    assert (await storage.get("user:7")) == "refreshed"
    assert (await storage.get("user:8")) == "record 8"


def test_repr_shows_the_path_only(db_path: Path) -> None:
    assert repr(SQLiteStorage(db_path)) == f"SQLiteStorage({str(db_path)!r})"


def test_constructor_touches_nothing(db_path: Path) -> None:
    SQLiteStorage(db_path)
    assert not db_path.parent.exists()


def test_a_negative_lock_timeout_is_rejected(db_path: Path) -> None:
    with pytest.raises(ValueError):
        SQLiteStorage(db_path, lock_timeout=-1)


async def test_lone_surrogates_in_values_and_nul_survive(db_path: Path) -> None:
    odd = {"k": "half a pair: \udfff!", "nul\0key": "nul\0value", "plain": "x"}
    await SQLiteStorage(db_path).update(odd)
    assert await SQLiteStorage(db_path).items("") == odd
    assert await SQLiteStorage(db_path).get("k") == odd["k"]


async def test_a_key_with_a_lone_surrogate_is_refused(db_path: Path) -> None:
    storage = SQLiteStorage(db_path)
    with pytest.raises(InvalidArgumentError):
        await storage.set("k\ud800", "v")
    with pytest.raises(InvalidArgumentError):
        await storage.items("\ud800")
    assert await storage.items("") == {}


async def test_prefixes_at_the_edges_of_unicode(db_path: Path) -> None:
    storage = SQLiteStorage(db_path)
    keys = ["a", "a\U0010ffff", "a\U0010ffffz", "b", "\U0010ffff", "\U0010ffffx", "", "é", "éa"]
    await storage.update({k: k for k in keys})
    for prefix in ["a", "a\U0010ffff", "\U0010ffff", "é", "", "z"]:
        assert await storage.items(prefix) == {k: k for k in keys if k.startswith(prefix)}, prefix


async def test_transact_serialises_instances(db_path: Path) -> None:
    first, second = SQLiteStorage(db_path), SQLiteStorage(db_path)

    def increment(current: Mapping[str, str]) -> Mapping[str, str | None]:
        return {"n": str(int(current.get("n", "0")) + 1)}

    await asyncio.gather(*(s.transact(increment) for s in [first, second] * 50))
    assert await SQLiteStorage(db_path).get("n") == "100"


async def test_a_failing_transact_changes_nothing(db_path: Path) -> None:
    storage = SQLiteStorage(db_path)
    await storage.set("k", "v")

    def bad(current: Mapping[str, str]) -> Mapping[str, str | None]:
        return {"k": "changed", "bad": 1}  # type: ignore[dict-item]

    with pytest.raises(ValueError):
        await storage.transact(bad)
    assert await storage.items("") == {"k": "v"}


# -- permissions (S2) ---------------------------------------------------------------------


def test_modes_are_private_under_any_umask(tmp_path: Path) -> None:
    script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from appusers.adapters import SQLiteStorage\n"
        "os.umask(int(sys.argv[2], 8))\n"
        "path = Path(sys.argv[1]) / 'nested' / 'store' / 'users.sqlite'\n"
        "async def main():\n"
        "    s = SQLiteStorage(path)\n"
        "    await s.set('k', 'v')\n"
        "    await s.update({'k': 'w', 'x': 'y'})\n"
        "    assert await SQLiteStorage(path).items('') == {'k': 'w', 'x': 'y'}\n"
        "asyncio.run(main())\n"
    )
    for umask in ("000", "022", "077"):
        root = tmp_path / f"umask-{umask}"
        subprocess.run([sys.executable, "-c", script, str(root), umask], check=True, timeout=60)
        found = {
            str(p.relative_to(root)): mode_of(p) for p in root.rglob("*")
        }
        dirs = {p: m for p, m in found.items() if (root / p).is_dir()}
        files = {p: m for p, m in found.items() if p not in dirs}
        assert set(dirs.values()) == {0o700}, (umask, dirs)
        assert "nested/store/users.sqlite" in files
        assert set(files.values()) == {0o600}, (umask, files)


@pytest.mark.parametrize("mode", [0o775, 0o777, 0o1777], ids=oct)
async def test_a_directory_others_can_write_to_is_refused_and_left_alone(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    with pytest.raises(InsecureStorageError):
        await SQLiteStorage(shared / "users.sqlite").set("k", CANARY)
    assert mode_of(shared) == mode
    assert list(shared.iterdir()) == []


async def test_widened_files_are_narrowed_and_reported(db_path: Path) -> None:
    await SQLiteStorage(db_path).set("k", "v")
    os.chmod(db_path, 0o644)
    os.chmod(db_path.parent, 0o755)
    storage = SQLiteStorage(db_path)
    assert await storage.get("k") == "v"
    assert kinds(storage.drain_issues()) == ["permissions-repaired"]
    assert mode_of(db_path) == 0o600
    assert mode_of(db_path.parent) == 0o755


# -- damage and foreign files (R9) ------------------------------------------------------------


def foreign_database(path: Path, *, app_id: int = 0, version: int = 0, table: bool = True) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        if table:
            db.execute("CREATE TABLE notes (body TEXT)")
            db.execute("INSERT INTO notes VALUES (?)", (CANARY,))
        db.execute(f"PRAGMA application_id = {app_id}")
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()
    finally:
        db.close()
    os.chmod(path, 0o600)


def damaged_copy(path: Path) -> bytes:
    """A real store of ours with its pages overwritten in the middle."""
    async def make() -> None:
        await SQLiteStorage(path).update({f"user:{i}": CANARY * 10 for i in range(500)})

    asyncio.run(make())
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    for offset in range(4096, len(data), 4096):
        data[offset + 8 : offset + 200] = random.Random(offset).randbytes(192)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return bytes(data)


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


CORRUPT_BYTES = {
    "random-bytes": random.Random(9).randbytes(8192),
    "json-store": json.dumps({"format": "appusers-storage", "version": 1, "items": {"a": CANARY}}).encode(),
    "truncated-header": b"SQLite format 3\0" + b"\0" * 10,
    "nul-bytes": b"\0" * 4096,
}


@pytest.mark.parametrize("data", CORRUPT_BYTES.values(), ids=CORRUPT_BYTES.keys())
async def test_a_file_that_is_not_a_database_is_quarantined(
    db_path: Path, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    write_bytes(db_path, data)
    caplog.set_level(logging.DEBUG)
    storage = SQLiteStorage(db_path)
    assert await storage.items("") == {}
    [issue] = storage.drain_issues()
    assert issue.kind == "quarantined"
    moved = Path(issue.path)
    assert moved.name.startswith("users.sqlite.corrupt-")
    assert moved.read_bytes() == data
    assert mode_of(moved) == 0o600
    assert CANARY not in issue.detail and CANARY not in caplog.text
    await storage.set("k", "fresh")
    assert await SQLiteStorage(db_path).items("") == {"k": "fresh"}


async def test_an_empty_file_is_an_empty_store(db_path: Path) -> None:
    write_bytes(db_path, b"")
    storage = SQLiteStorage(db_path)
    assert await storage.items("") == {}
    assert storage.drain_issues() == []  # SQLite's own definition: a 0-byte file is an empty database
    await storage.set("k", "v")
    assert await SQLiteStorage(db_path).get("k") == "v"


@pytest.mark.parametrize(
    ("app_id", "version", "table", "why"),
    [
        (0, 0, True, "another application's database"),
        (0x1234, 1, False, "another application's database"),
        (0x61705553, 2, False, "unsupported schema version 2"),
        (0x61705553, 0, False, "unsupported schema version 0"),
    ],
    ids=["other-app-tables", "other-app-id", "newer-version", "missing-version"],
)
async def test_a_foreign_or_other_version_database_is_quarantined(
    db_path: Path, app_id: int, version: int, table: bool, why: str
) -> None:
    foreign_database(db_path, app_id=app_id, version=version, table=table)
    storage = SQLiteStorage(db_path)
    assert await storage.get("k") is None
    [issue] = storage.drain_issues()
    assert issue.kind == "quarantined" and why in issue.detail
    await storage.set("k", "v")
    assert rows(db_path) == {"k": "v"}


async def test_damaged_pages_are_quarantined_when_read(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = await asyncio.to_thread(damaged_copy, db_path)
    write_bytes(db_path, data)
    caplog.set_level(logging.DEBUG)
    storage = SQLiteStorage(db_path)
    assert await storage.items("") == {}  # the App starts; its users come back logged out
    assert kinds(storage.drain_issues()) == ["quarantined"]
    assert CANARY not in caplog.text
    await storage.set("k", "v")
    assert await SQLiteStorage(db_path).items("") == {"k": "v"}


async def test_damage_after_open_is_quarantined_on_the_next_operation(db_path: Path) -> None:
    storage = SQLiteStorage(db_path)
    await storage.set("a", "1")
    for suffix in ("", "-wal", "-shm"):
        db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
    write_bytes(db_path, b"garbage " * 1000)
    assert await storage.get("a") is None
    assert kinds(storage.drain_issues()) == ["quarantined"]
    await storage.set("b", "2")
    assert await SQLiteStorage(db_path).items("") == {"b": "2"}


# -- other processes (R10) ----------------------------------------------------------------


class _ConvertingElsewhere:
    """A connection whose switch to WAL loses ``losses`` times to another process converting
    the same file (SQLite's at-once "database is locked"), then finds the file in WAL."""

    def __init__(self, losses: int, error: str = "database is locked") -> None:
        self.losses, self.error, self.mode, self.switches = losses, error, "delete", 0

    def execute(self, sql: str) -> Any:
        if sql == "PRAGMA journal_mode = WAL":
            self.switches += 1
            if self.losses:
                self.losses -= 1
                if not self.losses:
                    self.mode = "wal"  # the other process finished the switch
                raise sqlite3.OperationalError(self.error)
            self.mode = "wal"
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_a_switch_to_wal_lost_to_another_opener_is_looked_at_again() -> None:
    db = _ConvertingElsewhere(losses=3)
    _to_wal(db, 5.0)  # type: ignore[arg-type]
    assert db.mode == "wal" and db.switches == 3


def test_a_switch_to_wal_still_locked_past_the_timeout_raises() -> None:
    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _to_wal(_Stuck(), 0.2)  # type: ignore[arg-type]
    assert time.monotonic() - start < 5


class _Stuck(_ConvertingElsewhere):
    def __init__(self) -> None:
        super().__init__(losses=10**9)

    def execute(self, sql: str) -> Any:
        if sql == "PRAGMA journal_mode = WAL":
            raise sqlite3.OperationalError("database is locked")
        return self


def test_any_other_error_of_the_switch_raises_at_once() -> None:
    db = _ConvertingElsewhere(losses=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        _to_wal(db, 5.0)  # type: ignore[arg-type]
    assert db.switches == 1


class _NoWal(_ConvertingElsewhere):
    """A file system where SQLite cannot use WAL: the switch answers with the old mode."""

    def __init__(self) -> None:
        super().__init__(losses=0)

    def execute(self, sql: str) -> Any:
        if sql == "PRAGMA journal_mode = WAL":
            self.switches += 1
        return self


def test_a_switch_to_wal_the_file_system_refuses_is_tried_once() -> None:
    # SQLite keeps the old journal mode there (no error); looking until the mode is WAL
    # would never end.
    db = _NoWal()
    _to_wal(db, 5.0)  # type: ignore[arg-type]
    assert db.switches == 1 and db.mode == "delete"


def test_processes_sharing_a_store_lose_no_updates(
    db_path: Path, worker: Callable[..., subprocess.Popen[str]]  # noqa: F811 (the imported fixture)
) -> None:
    processes, increments = 4, 50
    procs = [worker("counter", db_path, increments, "sqlite") for _ in range(processes)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert out.strip() == "done"
    assert asyncio.run(SQLiteStorage(db_path).get("counter")) == str(processes * increments)


async def test_a_held_write_lock_times_out_without_blocking_the_loop(db_path: Path) -> None:
    storage = SQLiteStorage(db_path, lock_timeout=0.3)
    await storage.set("k", "before")
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer, mid-transaction
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        started = time.monotonic()
        with pytest.raises(StorageLockTimeoutError) as caught:
            await storage.set("k", CANARY)
        waited = time.monotonic() - started
        assert isinstance(caught.value, StorageError) and isinstance(caught.value, TimeoutError)
        assert CANARY not in str(caught.value)
        assert 0.25 <= waited < 2.0
        assert ticks >= 10
        assert await storage.get("k") == "before"  # WAL: readers never wait for the writer
    finally:
        ticker.cancel()
        holder.execute("ROLLBACK")
        holder.close()
    await storage.set("k", "after")
    assert await SQLiteStorage(db_path).get("k") == "after"


@pytest.mark.slow
def test_writers_killed_mid_write_never_leave_an_unreadable_store(
    db_path: Path, worker: Callable[..., subprocess.Popen[str]]  # noqa: F811 (the imported fixture)
) -> None:
    report = kill_writers(
        worker, db_path, kills=60, size=1_000_000, how="sqlite", storage_class=SQLiteStorage
    )
    print(f"\nR9 kill test (SQLite): unreadable {report.unreadable}/{report.kills}, "
          f"{report.generations} generations, {report.seconds:.1f} s")
    assert report.unreadable == 0
    assert report.generations > 5



# -- page size (restore speed) ------------------------------------------------------------


def page_size(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA page_size").fetchone()[0])
    finally:
        db.close()


async def test_a_new_database_has_16_kib_pages(db_path: Path) -> None:
    storage = SQLiteStorage(db_path)
    await storage.set("a", "1")
    storage.close()
    assert page_size(db_path) == 16384


async def test_a_database_with_4_kib_pages_from_the_previous_version_still_opens(db_path: Path) -> None:
    # What the previous version made: SQLite's default 4 KiB pages, the same schema.
    db_path.parent.mkdir(mode=0o700, parents=True)
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("CREATE TABLE items (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID")
    db.execute("PRAGMA application_id = 1634751827")
    db.execute("PRAGMA user_version = 1")
    db.execute("PRAGMA journal_mode = WAL")
    db.executemany("INSERT INTO items VALUES (?, ?)", [(f"k{i:04}", f"v{i}" * 300) for i in range(200)])
    db.close()
    os.chmod(db_path, 0o600)
    assert page_size(db_path) == 4096
    storage = SQLiteStorage(db_path)
    assert await storage.items("k") == {f"k{i:04}": f"v{i}" * 300 for i in range(200)}
    await storage.update({"k0001": "changed", "k0002": None})
    assert (await storage.get("k0001"), await storage.get("k0002")) == ("changed", None)
    assert storage.drain_issues() == []
    storage.close()
    assert page_size(db_path) == 4096  # left as it was: changing it rewrites the whole file
