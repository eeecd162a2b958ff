"""Group commit of log-in writes in the SQLite user store (server/_group_commit.py).

Log-ins arriving during one event loop turn share a transaction; each is answered only
after that commit, a unique-key clash fails only its own log-in, and any other failure
fails the whole batch with a typed error, nothing half-written. Real SQLite files, a real
second connection holding the write lock, and a real server over HTTP.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from _server_testkit import Api

from appusers.server import LocalServer
from appusers.server._sqlite_store import SqliteUserStore
from appusers.server._store import DuplicateError, IdentityRecord, SessionRecord, StoreUnavailableError


def _identity(identity_id: str) -> IdentityRecord:
    return IdentityRecord(id=identity_id, provider_type="anon-user", provider_id="p" * 24)


def _opener(device_id: str = "d" * 24) -> object:
    def new(user_id: str) -> SessionRecord:
        return SessionRecord(
            id="s" + user_id[1:],
            user_id=user_id,
            device_id=device_id,
            refresh_digest="0" * 64,
            expires_at=2**31,
        )

    return new


def _counts(path: Path) -> tuple[int, int, int]:
    db = sqlite3.connect(path)
    try:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("users", "identities", "sessions")
        )
    finally:
        db.close()


async def test_concurrent_log_ins_share_one_commit_and_all_persist(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    try:
        before = store._group.commits
        users = await asyncio.gather(
            *(
                store.create_user("normal", {}, _identity(f"i{n}"), session=_opener(), now=1000)
                for n in range(40)
            )
        )
        assert store._group.commits - before == 1
        assert len({u.id for u in users}) == 40
        # Committed, as seen by another connection (what an answered log-in promises).
        assert _counts(path) == (40, 40, 40)
        for user in users:
            assert await store.get_user(user.id) == user
    finally:
        await store.close()


async def test_a_taken_identity_fails_only_its_own_log_in(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    try:
        results = await asyncio.gather(
            *(
                store.create_user("normal", {}, _identity(name), session=_opener(), now=1000)
                for name in ("a", "b", "taken", "c", "taken", "d")
            ),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == 1 and isinstance(failed[0], DuplicateError)
        # The clashing log-in left no user or session behind; the five others are all there.
        assert _counts(path) == (5, 5, 5)
    finally:
        await store.close()


async def test_a_locked_file_fails_the_whole_batch_with_a_typed_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    store._db.execute("PRAGMA busy_timeout=50")  # another process's lock, not waited for 5 s
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        results = await asyncio.gather(
            *(
                store.create_user("normal", {}, _identity(f"i{n}"), session=_opener(), now=1000)
                for n in range(5)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailableError) for r in results), results
        assert "locked" in str(results[0])
        other.execute("ROLLBACK")
        assert _counts(path) == (0, 0, 0)
        # The store is usable again once the lock is gone.
        await store.create_user("normal", {}, _identity("after"), session=_opener(), now=1000)
        assert _counts(path) == (1, 1, 1)
    finally:
        other.close()
        await store.close()


async def test_a_rejected_row_leaves_none_of_its_write_and_the_others_commit(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    # A constraint that is not a unique key: the session insert of one log-in fails after
    # its user and identity rows were inserted in the shared transaction.
    store._db.execute(
        "CREATE TRIGGER no_bad_device BEFORE INSERT ON sessions WHEN NEW.device_id = 'bad'"
        " BEGIN SELECT RAISE(ABORT, 'bad device'); END"
    )
    try:
        results = await asyncio.gather(
            store.create_user("normal", {}, _identity("a"), session=_opener(), now=1000),
            store.create_user("normal", {}, _identity("b"), session=_opener("bad"), now=1000),
            store.create_user("normal", {}, _identity("c"), session=_opener(), now=1000),
            return_exceptions=True,
        )
        assert isinstance(results[1], sqlite3.IntegrityError) and not isinstance(results[1], DuplicateError)
        assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
        assert _counts(path) == (2, 2, 2)
    finally:
        await store.close()


async def test_a_cancelled_log_in_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    try:
        task = asyncio.ensure_future(store.create_user("normal", {}, _identity("gone"), session=_opener()))
        kept = asyncio.ensure_future(store.create_user("normal", {}, _identity("kept"), session=_opener()))
        await asyncio.sleep(0)  # both queued, the commit not yet run
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await kept
        assert _counts(path) == (1, 1, 1)
    finally:
        await store.close()


async def test_open_session_records_the_log_in_and_drops_the_cached_user(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    try:
        user = await store.create_user("normal", {}, _identity("a"), now=1000)
        assert (await store.get_user(user.id)).last_login == 0  # type: ignore[union-attr]
        sessions = [
            SessionRecord(
                id=f"{n:024x}", user_id=user.id, device_id="d" * 24, refresh_digest="0" * 64, expires_at=9
            )
            for n in range(3)
        ]
        await asyncio.gather(*(store.open_session(s, 2000) for s in sessions))
        fresh = await store.get_user(user.id)
        assert fresh is not None and fresh.last_login == 2000 and fresh.last_active == 2000
        assert [await store.get_session(s.id) for s in sessions] == sessions
    finally:
        await store.close()


async def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    store = SqliteUserStore(path)
    task = asyncio.ensure_future(store.create_user("normal", {}, _identity("a"), session=_opener()))
    await asyncio.sleep(0)
    await store.close()
    await task
    assert _counts(path) == (1, 1, 1)


async def test_concurrent_anonymous_log_ins_over_http_are_all_answered_and_kept(
    api: Api, server: LocalServer
) -> None:
    bodies = await asyncio.gather(*(api.login("anon-user") for _ in range(30)))
    assert len({b["user_id"] for b in bodies}) == 30
    for body in bodies[:5]:  # each answered log-in works right away: its session was committed
        status, _h, profile = await api.request("GET", f"{api.auth}/profile", token=body["access_token"])
        assert status == 200 and profile["user_id"] == body["user_id"]
        status, _h, _b = await api.request("POST", f"{api.auth}/session", token=body["refresh_token"])
        assert status == 201
    users, identities, sessions = _counts(server.data_dir / "users.sqlite3")
    assert users >= 30 and identities >= 30 and sessions >= 30
