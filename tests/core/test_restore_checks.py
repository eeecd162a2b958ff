"""Restore's two paths agree: the common case (every listed user has a record as written, of
that user) is checked in bulk, anything else record by record; building splits a kept record
straight into the user (issue 11 item 3)."""

from __future__ import annotations

from typing import Any

import pytest

from appusers import App, UserState, _persistence
from appusers._models import Profile
from appusers._persistence import Persistence, build_user
from appusers._records import Index, dump_index, load_user
from appusers.adapters import MemoryStorage

from ._helpers import KEYS, TOKEN
from ._helpers import stored_user_record as _record


async def _open(
    records: dict[str, str], order: list[str], current: str | None = None
) -> tuple[App, MemoryStorage]:
    storage = MemoryStorage()
    await storage.update({**{KEYS.user(i): r for i, r in records.items()},
                          KEYS.index: dump_index(Index(tuple(order), current))})
    app = App("app", base_url="http://127.0.0.1:9", storage=storage)
    await app.open()
    return app, storage


async def test_every_record_as_written_restores_in_index_order() -> None:
    records = {i: _record(i, UserState.LOGGED_OUT if i == "m" else UserState.LOGGED_IN) for i in "zam"}
    app, _ = await _open(records, ["m", "z", "a"], current="a")
    try:
        assert list(app.all_users) == ["m", "z", "a"]
        assert app.current_user is app.all_users["a"]
        assert [u.state for u in app.all_users.values()] == [
            UserState.LOGGED_OUT, UserState.LOGGED_IN, UserState.LOGGED_IN]
        assert app.storage_issues == []
    finally:
        await app.aclose()


async def test_a_listed_user_without_a_record_is_left_out_quietly() -> None:
    app, _ = await _open({"a": _record("a"), "c": _record("c")}, ["a", "b", "c"], current="c")
    try:
        assert list(app.all_users) == ["a", "c"] and app.current_user is app.all_users["c"]
        assert app.storage_issues == []
    finally:
        await app.aclose()


async def test_another_users_record_and_an_unreadable_one_take_the_record_by_record_path() -> None:
    records = {"a": _record("a"), "b": _record("x"), "c": _record("c").replace("LoggedIn", "Sleeping")}
    app, storage = await _open(records, ["a", "b", "c"])
    try:
        assert list(app.all_users) == ["a"]
        assert [i.kind for i in app.storage_issues] == ["record-dropped"]
        assert sorted(await storage.items(KEYS.prefix)) == sorted([KEYS.index, KEYS.user("a")])
    finally:
        await app.aclose()


def _reference(text: str) -> tuple[Any, ...]:
    """What building gave before it split records itself: load_user, then core's token rule."""
    user = load_user(text)
    access, refresh = user.access_token, user.refresh_token
    if user.state is UserState.LOGGED_IN:
        if access and refresh and access.count(".") == 2 and refresh.count(".") == 2:
            return tuple(user)
        return (user.id, UserState.LOGGED_OUT, None, None, *user[4:])
    return (user.id, user.state, None, None, *user[4:])


def test_building_gives_the_fields_loading_gave() -> None:
    cases = [
        _record("a"),
        _record("a", UserState.LOGGED_OUT),
        _record("a", access_token="not-a-jwt"),
        _record("a", refresh_token=None),
        _record("a", access_token="a.b.c.d"),
        _record("a", UserState.LOGGED_OUT, access_token=TOKEN, refresh_token=TOKEN),
        _record("a", profile=None, identities=(), device_id=None, provider_type=None, last_used=0.0),
        _record("a", profile=Profile({"x": 1}, "custom")),
        _record("a", last_used=float("nan")),
    ]
    for text in cases:
        built = build_user(text, lambda *fields: fields)
        expected = _reference(text)
        assert len(built) == len(expected)
        for got, want in zip(built, expected, strict=True):
            assert got == want or (got != got and want != want), text  # nan equals nan here


async def _restore_both_ways(
    items: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """What Persistence.restore gives with its bulk check, and with record-by-record checks only."""

    async def restore() -> tuple[Any, ...]:
        storage = MemoryStorage()
        await storage.update(items)
        found = await Persistence(storage, "app").restore()
        return (list(found.records.items()), found.current, found.purge,
                [(i.kind, i.detail) for i in found.issues])

    bulk = await restore()
    with monkeypatch.context() as patch:
        patch.setattr(_persistence, "_all_written", lambda *args: None)
        one_by_one = await restore()
    return bulk, one_by_one


def _stored(records: dict[str, str], order: list[str], current: str | None = None) -> dict[str, str]:
    return {**{KEYS.user(i): r for i, r in records.items()},
            KEYS.index: dump_index(Index(tuple(order), current))}


@pytest.mark.parametrize(
    "items",
    [
        pytest.param(_stored({i: _record(i) for i in "abc"}, ["a", "b", "c"], "b"), id="in storage order"),
        pytest.param(_stored({i: _record(i) for i in "abc"}, ["c", "a", "b"], "a"), id="another order"),
        pytest.param(_stored({i: _record(i) for i in "abc"}, ["c", "a", "a"]),
                     id="a listed twice, one unlisted"),
        pytest.param(_stored({i: _record(i) for i in "ab"}, ["a", "a"]), id="a listed twice, b unlisted"),
        pytest.param(_stored({i: _record(i) for i in "ab"}, ["a", "c"]), id="one unlisted, one missing"),
        pytest.param(_stored({"a": _record("b"), "b": _record("a")}, ["a", "b"]), id="records swapped"),
        pytest.param(_stored({"a": _record("a"), "b": _record("a")}, ["a", "b"]), id="a record twice"),
        pytest.param({**_stored({"a": _record("a")}, ["a"]), KEYS.prefix + "other": _record("a")},
                     id="another kind of key"),
        pytest.param(_stored({"a": _record("a"), "b": _record("b", UserState.REMOVED)}, ["b", "a"]),
                     id="a removed user"),
        pytest.param(_stored({"a": _record("a"), "b": "u1\tb"}, ["a", "b"]), id="an unreadable record"),
        pytest.param(_stored({"a": _record("a"), "b": _record("b") + "\tx"}, ["a", "b"]),
                     id="a field too many"),
        pytest.param({**_stored({"a": _record("a")}, ["a"]), KEYS.index: '{"v": 1, "order": ["a", 7]}'},
                     id="a bad index"),
        pytest.param(_stored({"a": _record("a")}, []), id="an empty index"),
        pytest.param({KEYS.user("a"): _record("a")}, id="no index"),
    ],
)
async def test_the_bulk_check_agrees_with_checking_record_by_record(
    items: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, one_by_one = await _restore_both_ways(items, monkeypatch)
    assert bulk == one_by_one


async def test_the_bulk_check_takes_the_common_case_in_any_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite hands the items back in key order, which need not be the index's (log-in) order.
    calls: list[dict[str, str] | None] = []
    real = _persistence._all_written

    def spy(*args: Any) -> dict[str, str] | None:
        calls.append(real(*args))
        return calls[-1]

    monkeypatch.setattr(_persistence, "_all_written", spy)
    for order in (["a", "b", "c"], ["c", "a", "b"]):
        storage = MemoryStorage()
        await storage.update(_stored({i: _record(i) for i in "cab"}, order, "a"))
        found = await Persistence(storage, "app").restore()
        assert list(found.records) == order and found.current == "a" and not found.issues
        assert calls[-1] is not None and list(calls[-1]) == order
