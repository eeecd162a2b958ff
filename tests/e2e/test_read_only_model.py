"""The model is read-only from outside (issue 11 item 5): custom data and profile data are
immutable mappings at every depth; a user's id, device id, state and tokens cannot be
assigned; a state changes only through the lifecycle machine."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from appusers import Credentials, CustomDataRefreshed, Identity, Profile, Tokens, UserState
from appusers.adapters import FileStorage

from ._helpers import Snapshot, custom_token, email_user, stored

CLAIMS = {"name": "Ana Lima", "email": "ana@example.com", "team": "blue"}
NESTED = {"plan": "gold", "prefs": {"theme": "dark", "tags": ["a", {"x": 1}]}, "seats": [1, 2]}

# Every way a caller might try to change a mapping or a list in place.
MAPPING_MUTATIONS: list[tuple[str, Callable[[Any], object]]] = [
    ("setitem", lambda m: m.__setitem__("plan", "free")),
    ("delitem", lambda m: m.__delitem__("plan")),
    ("update", lambda m: m.update(plan="free")),
    ("setdefault", lambda m: m.setdefault("new", 1)),
    ("pop", lambda m: m.pop("plan")),
    ("popitem", lambda m: m.popitem()),
    ("clear", lambda m: m.clear()),
    ("ior", lambda m: m.__ior__({"plan": "free"})),
]
LIST_MUTATIONS: list[tuple[str, Callable[[Any], object]]] = [
    ("setitem", lambda s: s.__setitem__(0, "z")),
    ("delitem", lambda s: s.__delitem__(0)),
    ("append", lambda s: s.append("z")),
    ("extend", lambda s: s.extend(["z"])),
    ("insert", lambda s: s.insert(0, "z")),
    ("pop", lambda s: s.pop()),
    ("remove", lambda s: s.remove(s[0])),
    ("clear", lambda s: s.clear()),
    ("sort", lambda s: s.sort(key=str)),
    ("reverse", lambda s: s.reverse()),
    ("iadd", lambda s: s.__iadd__(["z"])),
    ("imul", lambda s: s.__imul__(2)),
]


def assert_read_only(mapping: Any, path: str = "") -> int:
    """Every mapping and list in ``mapping`` refuses every in-place change; how many were tried."""
    tried = 0
    if isinstance(mapping, dict):
        for _name, mutate in MAPPING_MUTATIONS:
            with pytest.raises(TypeError, match="read-only"):
                mutate(mapping)
            tried += 1
        for key, value in mapping.items():
            tried += assert_read_only(value, f"{path}.{key}")
    elif isinstance(mapping, list):
        for _name, mutate in LIST_MUTATIONS:
            with pytest.raises(TypeError, match="read-only"):
                mutate(mapping)
            tried += 1
        for index, value in enumerate(mapping):
            tried += assert_read_only(value, f"{path}[{index}]")
    return tried


async def test_custom_data_is_immutable_at_every_depth(app, server, store_path, make_app):
    ana = await email_user(app, server, "ana@example.com")
    assert_read_only(ana.custom_data)  # the empty mapping of a token without custom data too
    events: list[object] = []
    ana.events.subscribe(events.append)
    await ana.call_function("set_custom_data", NESTED)
    data = await ana.refresh_custom_data()
    expected = {k: v for k, v in data.items() if k != "_id"}
    assert expected == {"user_id": ana.id, **NESTED}

    tried = assert_read_only(data)
    assert tried == len(MAPPING_MUTATIONS) * 3 + len(LIST_MUTATIONS) * 2
    assert ana.custom_data == data and {k: v for k, v in ana.custom_data.items() if k != "_id"} == expected
    # The event carries the same read-only value.
    refreshed = [e for e in events if isinstance(e, CustomDataRefreshed)]
    assert refreshed and refreshed[-1].custom_data is ana.custom_data
    assert_read_only(refreshed[-1].custom_data)

    # Still plain data for every reader: equal to dicts and lists, JSON, copies, pickles...
    plain = json.loads(json.dumps({k: v for k, v in data.items() if k != "_id"}))
    assert plain == expected
    assert copy.deepcopy(data) == data and pickle.loads(pickle.dumps(data)) == data
    mutable = {k: v for k, v in data.items()}
    mutable["plan"] = "free"  # a copy can be changed; the user's data cannot
    assert ana.custom_data["plan"] == "gold"
    # ...and it goes back to the server as it came (a frozen value encodes as Extended JSON).
    await ana.call_function("set_custom_data", dict(ana.custom_data["prefs"]))
    assert (await ana.refresh_custom_data())["tags"] == ["a", {"x": 1}]

    # A user restored from storage gets read-only custom data too.
    restored = (await make_app(storage=FileStorage(store_path))).all_users[ana.id]
    assert restored.custom_data == ana.custom_data
    assert_read_only(restored.custom_data)


async def test_profile_data_is_immutable_fresh_and_restored(app, server, store_path, make_app):
    user = await app.log_in(Credentials.jwt(custom_token("ana-sub", **CLAIMS)))
    assert user.profile.data["team"] == "blue"
    assert_read_only(user.profile.data)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.profile.data = {}  # type: ignore[misc]
    restored = (await make_app(storage=FileStorage(store_path))).all_users[user.id]
    assert restored.profile == user.profile
    assert_read_only(restored.profile.data)
    # Refreshing replaces the profile with another read-only one.
    assert_read_only((await user.refresh_profile()).data)


def test_profile_values_given_in_code_are_frozen_deeply() -> None:
    source = {"name": "Ana", "info": {"langs": ["pt", "en"]}}
    profile = Profile(source)
    source["info"]["langs"].append("de")  # the caller's dict is copied, not kept
    assert profile.data == {"name": "Ana", "info": {"langs": ["pt", "en"]}}
    assert assert_read_only(profile.data) > 0
    assert Profile().data == {} and Profile(None).data == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", "someone-else"),
        ("device_id", "000000000000000000000001"),
        ("state", UserState.LOGGED_OUT),
        ("state", UserState.REMOVED),
        ("access_token", "a.b.c"),
        ("refresh_token", "a.b.c"),
        ("tokens", None),
        ("custom_data", {"plan": "free"}),
        ("profile", Profile()),
        ("identities", ()),
        ("last_used", 0.0),
        ("is_logged_in", False),
        ("app", None),
        ("not_an_attribute", 1),
    ],
)
async def test_no_attribute_of_a_user_can_be_assigned(app, server, store_path, name, value):
    ana = await email_user(app, server, "ana@example.com")
    before = Snapshot(server, store_path)
    seen = (ana.id, ana.device_id, ana.state, ana.access_token, ana.refresh_token, ana.identities)
    events: list[object] = []
    ana.events.subscribe(events.append)
    app_events: list[object] = []
    app.events.subscribe(app_events.append)

    with pytest.raises(AttributeError):
        setattr(ana, name, value)
    with pytest.raises(AttributeError):
        delattr(ana, name)

    assert (ana.id, ana.device_id, ana.state, ana.access_token, ana.refresh_token, ana.identities) == seen
    assert app.current_user is ana and ana.is_logged_in
    assert events == [] and app_events == []
    before.assert_unchanged()
    assert (await ana.functions.whoami())["identities"] == ["local-userpass"]  # the session is intact


async def test_a_state_changes_only_through_the_machine(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    states: list[UserState] = []
    ana.state_changes.subscribe(states.append)
    # No public way around the machine: no setter, no token-dropping hook, no instance dict.
    assert not hasattr(ana, "drop_tokens") and not hasattr(ana, "__dict__")
    with pytest.raises(AttributeError):
        ana.state = UserState.LOGGED_OUT  # type: ignore[misc]
    assert states == [UserState.LOGGED_IN] and app.current_user is ana
    # The machine's way: a log-out, published, persisted.
    await ana.log_out()
    assert ana.state is UserState.LOGGED_OUT and states == [UserState.LOGGED_IN, UserState.LOGGED_OUT]
    assert stored(store_path)[ana.id]["state"] == "LoggedOut" and app.current_user is None


def test_the_values_a_user_hands_out_are_frozen() -> None:
    identity = Identity("id-1", "anon-user")
    tokens = Tokens("a.b.c", "d.e.f")
    for value, field in ((identity, "id"), (identity, "provider_type"), (tokens, "access_token")):
        with pytest.raises(AttributeError):
            setattr(value, field, "x")
    assert repr(tokens) == "Tokens(<redacted>)"
