"""Restore's two paths agree: the common case (every listed user has a record as written, of
that user) is checked in bulk, anything else record by record; building splits a kept record
straight into the user (issue 11 item 3)."""

from __future__ import annotations

from typing import Any

from appusers import App, UserState
from appusers._models import Profile
from appusers._persistence import build_user
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
