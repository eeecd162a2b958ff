"""WAL checkpoints of the users file run in a thread of their own, never on the event loop.

Real files, real SQLite connections, real processes: a server's serving connection has
auto-checkpoints off, the thread keeps the WAL bounded under a stream of log-ins, survives
a deleted WAL, a file it cannot open and a reader in another process that pins the log, and
ends with its connection when the store closes. A killed server loses no answered log-in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from appusers.server import LocalServer
from appusers.server._checkpointer import Checkpointer
from appusers.server._secrets import new_object_id
from appusers.server._sqlite_store import SqliteUserStore
from appusers.server._store import IdentityRecord, SessionRecord

#: Frame limit of the tests' checkpointers: small, so that a test passes it many times.
LIMIT = 200
FRAME = 4096 + 24


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "appusers-checkpoint"]


def _wal(path: Path) -> int:
    try:
        return os.path.getsize(f"{path}-wal")
    except FileNotFoundError:
        return 0


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the checkpoint thread to do something (a bound against hangs, not a timing)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        await asyncio.sleep(0.01)


async def _two_ticks(checkpointer: Checkpointer) -> None:
    """Until the thread looked at the database after everything committed so far."""
    ticks = checkpointer.ticks
    await _until(lambda: checkpointer.ticks >= ticks + 2, "two looks at the database")


async def _log_ins(store: SqliteUserStore, count: int) -> list[str]:
    """``count`` anonymous first log-ins, as the server writes them (group commit); their ids."""
    refresh = "r" * 43

    async def one() -> str:
        identity = IdentityRecord(
            id=new_object_id(), provider_type="anon-user", provider_id="anon-user", provider_data={}
        )
        sid = new_object_id()
        user = await store.create_user(
            "normal",
            {},
            identity,
            session=lambda uid: SessionRecord(sid, uid, "device", refresh, 2**40, None),
        )
        return user.id

    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteUserStore]:
    store = SqliteUserStore(tmp_path / "users.sqlite3")
    try:
        yield store
    finally:
        await store.close()


async def test_a_server_turns_auto_checkpoints_off_and_its_thread_ends_with_it(tmp_path: Path) -> None:
    async with LocalServer(data_dir=tmp_path / "data") as server:
        store = server._store
        assert isinstance(store, SqliteUserStore)
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert [t.is_alive() for t in _threads()] == [True]
    assert _threads() == []


async def test_other_users_of_the_store_keep_sqlites_auto_checkpoint(store: SqliteUserStore) -> None:
    # The ``appusers users`` commands and tests run no thread: SQLite checkpoints for them.
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert _threads() == []


async def test_the_wal_stays_bounded_under_a_stream_of_log_ins(
    store: SqliteUserStore, tmp_path: Path
) -> None:
    path = tmp_path / "users.sqlite3"
    checkpointer = store.checkpoint_in_background(period=0.005, limit=LIMIT)
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    ids: list[str] = []
    largest = written = 0
    for _ in range(40):
        ids += await _log_ins(store, 50)
        await _two_ticks(checkpointer)
        largest = max(largest, _wal(path))
        # Each round's frames, counted from where the log started over.
        assert 0 < checkpointer.frames < LIMIT
        written += checkpointer.frames
    # The log-ins wrote many times the limit into a file that stayed small.
    assert written > 5 * LIMIT
    assert largest <= LIMIT * FRAME, largest
    # Every log-in is there, read through another connection.
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == len(ids)
    finally:
        other.close()


async def test_a_log_past_the_limit_is_started_over_at_once(store: SqliteUserStore, tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store.checkpoint_in_background(period=3600, limit=LIMIT)  # auto-checkpoints off, thread asleep
    checkpointer = Checkpointer(path, period=3600, limit=LIMIT)  # not started: ticked by hand
    try:
        for _ in range(3):
            for _ in range(8):  # a few times the limit, in several commits
                await _log_ins(store, 100)
            size = _wal(path)
            assert size > LIMIT * FRAME
            checkpointer._tick(final=False)
            assert checkpointer.frames == 0  # copied and started over, not only copied
        # Each batch overwrote the same file from its start.
        assert checkpointer.restarts == 3 and _wal(path) == size
    finally:
        checkpointer.stop()
    assert checkpointer._db is None


async def test_closing_the_store_checkpoints_joins_the_thread_and_closes_its_connection(
    store: SqliteUserStore, tmp_path: Path
) -> None:
    checkpointer = store.checkpoint_in_background(period=3600, limit=LIMIT)
    await _log_ins(store, 20)
    assert checkpointer.restarts == 0  # the period is an hour: nothing ran yet
    await store.close()
    assert _threads() == []
    assert checkpointer._db is None
    assert checkpointer.restarts == 1  # the last checkpoint, at close
    checkpointer.stop()  # idempotent


async def test_a_deleted_wal_stops_neither_the_server_nor_the_thread(
    store: SqliteUserStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.sqlite3"
    checkpointer = store.checkpoint_in_background(period=0.005, limit=LIMIT)
    await _log_ins(store, 50)
    os.unlink(f"{path}-wal")  # both connections keep the file they opened
    ids = await _log_ins(store, 200)
    await _two_ticks(checkpointer)
    assert [t.is_alive() for t in _threads()] == [True]
    assert all([await store.get_user(i) for i in ids])
    assert "Traceback" not in caplog.text


async def test_a_database_it_cannot_open_is_logged_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.sqlite3"
    path.mkdir()  # not a file: every connection attempt fails
    checkpointer = Checkpointer(path, period=0.005, limit=LIMIT)
    with caplog.at_level(logging.WARNING, logger="appusers.server"):
        checkpointer.start()
        await _until(lambda: "WAL checkpoint" in caplog.text, "a warning")
        await asyncio.sleep(0.05)  # many more failed ticks: still one line
        checkpointer.stop()
    lines = [r.getMessage() for r in caplog.records if "WAL checkpoint" in r.getMessage()]
    assert len(lines) == 1 and str(path) in lines[0] and "unable to open" in lines[0], lines
    assert _threads() == []


_READER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT COUNT(*) FROM users").fetchone()
print("reading", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
db.close()
"""


async def test_a_long_reader_in_another_process_is_logged_and_the_wal_shrinks_once_it_goes(
    store: SqliteUserStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users.sqlite3"
    checkpointer = store.checkpoint_in_background(period=0.005, limit=LIMIT)
    await _log_ins(store, 10)
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _READER, str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert reader.stdout is not None and await reader.stdout.readline() == b"reading\n"
        with caplog.at_level(logging.WARNING, logger="appusers.server"):
            for _ in range(20):  # the reader pins the log: it grows past twice the limit
                await _log_ins(store, 50)
            await _until(lambda: "read transaction" in caplog.text, "the reader warning")
        assert _wal(path) > 2 * LIMIT * FRAME
        # Writes go on meanwhile.
        assert len(await _log_ins(store, 10)) == 10
    finally:
        await asyncio.wait_for(reader.communicate(b"done\n"), 60)
    assert reader.returncode == 0
    message = next(r.getMessage() for r in caplog.records if "read transaction" in r.getMessage())
    assert "r" * 43 not in message and "Traceback" not in caplog.text
    # The reader gone, the log is emptied (the file truncated) within a few passes.
    await _until(lambda: _wal(path) <= 2 * LIMIT * FRAME, "the WAL to shrink")
    await _log_ins(store, 50)
    await _two_ticks(checkpointer)
    assert _wal(path) <= 2 * LIMIT * FRAME
    assert [t.is_alive() for t in _threads()] == [True]


async def test_a_killed_server_loses_no_answered_log_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appusers.server", "--port", "0", "--data", str(data),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "appusers server: http://" in banner, banner
        words = banner.split()
        url = f"{words[2]}/api/client/v2.0/app/{words[5]}/auth/providers/anon-user/login"
        async with aiohttp.ClientSession() as http:

            async def login() -> str:
                async with http.post(url, json={}) as resp:
                    assert resp.status == 200, await resp.text()
                    return str((await resp.json())["user_id"])

            answered: list[str] = []
            for _ in range(10):
                answered += await asyncio.gather(*(login() for _ in range(30)))
    finally:
        # No chance to flush, checkpoint or close: what was answered must be in the file.
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -signal.SIGKILL
    db = sqlite3.connect(data / "users.sqlite3")
    try:
        found = {r[0] for r in db.execute("SELECT user_id FROM sessions")}
    finally:
        db.close()
    assert set(answered) <= found and len(answered) == 300
