"""Restoring reads and checks every record in ``App.open()`` but builds each ``User`` on first
use (issue 11 item 3): what the App shows is what building every user at start-up showed."""

from __future__ import annotations

import gc
import random
from typing import Any

import pytest

from appusers import App, User, UserState
from appusers._records import Index, check_user, dump_index, load_user
from appusers._registry import UserRegistry
from appusers.adapters import MemoryStorage, MockTransport
from appusers.transport import Request, Response

from ._helpers import KEYS
from ._helpers import stored_user_record as _record


def _with_field(record: str, number: int, value: str) -> str:
    fields = record.split("\t")
    fields[number] = value
    return "\t".join(fields)


def _reference(text: str, user_id: str) -> str:
    """The verdict of the restore before users were built lazily: load, then keep or purge."""
    try:
        record = load_user(text)
    except ValueError:
        return "unreadable"
    return "keep" if record.state is not UserState.REMOVED and record.id == user_id else "purge"


def _verdict(text: str, user_id: str) -> str:
    try:
        return "keep" if check_user(text, user_id) else "purge"
    except ValueError:
        return "unreadable"


LAST_USED = 7  # the field number of "last used"
ODD_RECORDS = {
    "written, logged in": _record("a"),
    "written, logged out": _record("a", UserState.LOGGED_OUT),
    "removed": _record("a", UserState.REMOVED),
    "another user's": _record("b"),
    "last used nan": _record("a", last_used=float("nan")),
    "last used -inf": _record("a", last_used=float("-inf")),
    "last used 1e+16": _record("a", last_used=1e16),
    "last used 5e-324": _record("a", last_used=5e-324),
    "last used with spaces": _with_field(_record("a"), LAST_USED, " 12 "),
    "last used with underscores": _with_field(_record("a"), LAST_USED, "1_000"),
    "last used in Arabic digits": _with_field(_record("a"), LAST_USED, "\u0661\u0662"),
    "last used not a number": _with_field(_record("a"), LAST_USED, "soon"),
    "last used empty": _with_field(_record("a"), LAST_USED, ""),
    "unknown state": _with_field(_record("a"), 2, "Sleeping"),
    "unknown tag": _with_field(_record("a"), 0, "u2"),
    "empty id": _with_field(_record("a"), 1, ""),
    "identities not a list": _with_field(_record("a"), 9, "{}"),
    "identities empty": _with_field(_record("a"), 9, ""),
    "a field too many": _record("a") + "\t",
    "a field too few": _record("a").rpartition("\t")[0],
    "a newline in a token": _with_field(_record("a"), 3, "a.b\n.c"),
    "not a record": "{not a record}",
    "empty": "",
}


@pytest.mark.parametrize("name", list(ODD_RECORDS))
def test_the_start_up_check_gives_the_verdict_of_loading_the_record(name: str) -> None:
    text = ODD_RECORDS[name]
    assert _verdict(text, "a") == _reference(text, "a")


def test_the_start_up_check_agrees_with_loading_on_damaged_records() -> None:
    # The check's fast path must accept nothing that load_user refuses: damage written records
    # one character at a time (tabs, digits, letters, JSON) and compare the verdicts.
    rng = random.Random(11)
    alphabet = "\t\n .-+e0123456789[]{}\"aLnifO"
    seeds = [ODD_RECORDS[name] for name in ("written, logged in", "written, logged out", "last used 1e+16")]
    verdicts: set[str] = set()
    for _ in range(3000):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            spot = rng.randrange(len(text))
            if rng.random() < 0.3:
                del text[spot]
            else:
                text[spot] = rng.choice(alphabet)
        damaged = "".join(text)
        verdict = _verdict(damaged, "a")
        assert verdict == _reference(damaged, "a"), damaged
        verdicts.add(verdict)
    assert verdicts == {"keep", "purge", "unreadable"}  # the damage did reach every verdict


async def _storage(records: dict[str, str], order: list[str], current: str | None) -> MemoryStorage:
    storage = MemoryStorage()
    await storage.update({**{KEYS.user(i): r for i, r in records.items()},
                          KEYS.index: dump_index(Index(tuple(order), current))})
    return storage


async def test_a_restore_keeps_drops_and_purges_as_before() -> None:
    records = {
        "a": _record("a", UserState.LOGGED_OUT),
        "b": _with_field(_record("b"), 3, "damaged"),  # comes back logged out (core's rule)
        "c": _record("c", UserState.REMOVED),
        "d": _with_field(_record("d"), LAST_USED, "soon"),  # unreadable: dropped, reported
        "e": _with_field(_record("e"), LAST_USED, " 12 "),  # odd but readable
        "f": _record("g"),  # another user's record under f's key
        "h": _record("h"),
    }
    storage = await _storage(records, list(records), current="b")
    async with App("app", base_url="http://127.0.0.1:9", storage=storage) as app:
        assert list(app.all_users) == ["a", "b", "e", "h"]
        users = app.all_users
        assert [u.state for u in users.values()] == [
            UserState.LOGGED_OUT, UserState.LOGGED_OUT, UserState.LOGGED_IN, UserState.LOGGED_IN]
        assert users["e"].last_used == 12.0
        assert users["b"].access_token is None and users["b"].refresh_token is None
        assert app.current_user is users["e"]  # the stored current user is logged out
        assert [(i.kind, "user d" in i.detail) for i in app.storage_issues] == [("record-dropped", True)]
        left = await storage.items(KEYS.prefix)
        assert sorted(left) == sorted([KEYS.index, *(KEYS.user(i) for i in "abeh")])
        assert left[KEYS.index] == dump_index(Index(("a", "b", "e", "h"), "e"))


async def test_open_builds_only_the_users_it_reaches() -> None:
    records = {f"u{i:04}": _record(f"u{i:04}", UserState.LOGGED_OUT if i < 3 else UserState.LOGGED_IN)
               for i in range(1000)}
    storage = await _storage(records, list(records), current="u0500")

    def users_built() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, User))

    gc.collect()
    before = users_built()
    async with App("app", base_url="http://127.0.0.1:9", storage=storage,
                   transport=MockTransport(_server)) as app:
        assert users_built() - before == 1  # the stored current user
        current = app.current_user
        assert current is not None and current.id == "u0500"
        assert users_built() - before == 1
        await app.log_out(current)  # the next current user is the first logged in: u0003
        assert users_built() - before == 5  # and the users before the next current one
        assert app.current_user is app.all_users["u0003"]
        assert users_built() - before == 1000  # all_users built every user, once
        assert app.all_users["u0003"] is app.current_user
        assert list(app.all_users) == list(records)


def _server(request: Request) -> Response:
    if request.url.endswith("/location"):
        body = b'{"deployment_model": "GLOBAL", "location": "local", "hostname": "http://127.0.0.1:9"}'
        return Response(200, {"content-type": "application/json"}, body)
    return Response(204)  # the log-out's DELETE /auth/session


def _counting_registry() -> tuple[UserRegistry, list[str]]:
    built: list[str] = []

    def factory(user_id: str, *rest: Any) -> Any:
        built.append(user_id)
        return User(None, user_id, *rest)  # type: ignore[arg-type]

    return UserRegistry(factory), built


def test_the_registry_builds_each_user_once_on_first_use() -> None:
    users, built = _counting_registry()
    users.restore({i: _record(i) for i in "abcd"})
    assert (list(users), len(users), "c" in users, built) == (["a", "b", "c", "d"], 4, True, [])
    b = users.get("b")
    assert b is not None and users.get("b") is b and built == ["b"]
    assert users.get("zz") is None
    first = next(iter(users.values()))
    assert first.id == "a" and built == ["b", "a"]  # a loop that stops early builds no further
    del users["c"]  # never built, never will be
    users["d"] = replacement = User(None, "d", UserState.LOGGED_OUT, None, None)  # type: ignore[arg-type]
    everyone = users.built()
    assert list(everyone) == ["a", "b", "d"] and everyone["d"] is replacement
    assert everyone["b"] is b and built == ["b", "a"]
    assert list(users.values()) == list(everyone.values())


def test_the_registry_merges_a_restore_into_users_already_there() -> None:
    users, built = _counting_registry()
    users["b"] = User(None, "b", UserState.LOGGED_OUT, None, None)  # type: ignore[arg-type]
    users.restore({"a": _record("a"), "b": _record("b")})  # dict.update's order: b stays first
    assert list(users) == ["b", "a"] and built == []
    assert [u.state for u in users.built().values()] == [UserState.LOGGED_IN, UserState.LOGGED_IN]
    assert built == ["b", "a"]


def test_a_restore_the_registry_takes_is_not_copied_and_one_it_does_not_take_is_left_alone() -> None:
    records = {"a": _record("a"), "b": _record("b")}
    users, _ = _counting_registry()
    users.restore(dict(records))  # the caller keeps its dict: building does not touch it
    given = dict(records)
    users.restore(given)
    users.built()
    assert given == records
    taken = dict(records)
    users, _ = _counting_registry()
    users.restore(taken, take=True)
    everyone = users.built()
    assert all(type(taken[i]) is User for i in "ab") and everyone == taken
    users.restore({"c": _record("c")}, take=True)  # not empty: merged, as without take
    assert list(users) == ["a", "b", "c"] and list(taken) == ["a", "b", "c"]


def test_threads_reading_the_users_at_once_get_the_same_user_objects() -> None:
    # A UI thread may read all_users while the App's loop reads current_user: one User per id.
    import sys
    import threading

    users, built = _counting_registry()
    users.restore({f"u{i}": _record(f"u{i}") for i in range(2000)})
    seen: list[dict[str, User]] = []
    start = threading.Barrier(4)

    def read() -> None:
        start.wait()
        seen.append(users.built())

    threads = [threading.Thread(target=read) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, mid-build included
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(built) == 2000
    assert all(all(a is b for a, b in zip(s.values(), seen[0].values(), strict=True)) for s in seen)
