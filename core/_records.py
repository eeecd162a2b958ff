"""How an App's users are laid out in a :class:`~appusers.storage.Storage`.

Keys, all under ``appusers:<app id>:``::

    index           {"v": 1, "order": [user ids, storage order], "current": id | null}
    user:<user id>  {"v": 1, "id", "state", "access_token", "refresh_token", "device_id",
                     "identities": [[id, provider_type], ...], "profile": {...} | null,
                     "profile_type", "provider_type", "last_used"}

One record per user keeps a token refresh to one small value; the index keeps
the order and the current user. Both are written together with ``Storage.update``.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import attrs

from ._models import Identity, Profile, UserState

__all__ = [
    "FORMAT_VERSION", "Index", "Keys", "UserRecord", "dump_index", "dump_user", "identities_from_raw",
    "load_index", "load_user",
]

FORMAT_VERSION = 1


@attrs.frozen
class Keys:
    prefix: str

    @classmethod
    def for_app(cls, app_id: str) -> Keys:
        return cls(f"appusers:{app_id}:")

    @property
    def index(self) -> str:
        return self.prefix + "index"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    def user_id_of(self, key: str) -> str | None:
        head = self.prefix + "user:"
        return key[len(head) :] if key.startswith(head) else None


@attrs.frozen
class Index:
    order: tuple[str, ...] = ()
    current: str | None = None


class UserRecord(NamedTuple):
    """One user as stored. ``identities`` and ``profile`` may still be raw JSON (see ``User``).

    A NamedTuple, not an attrs class: restoring builds 100,000 of these.
    """

    id: str
    state: UserState
    access_token: str | None
    refresh_token: str | None
    device_id: str | None
    identities: tuple[Identity, ...] | list[Any]
    profile: Profile | tuple[dict[str, Any], str] | None
    provider_type: str | None
    last_used: float

    def __repr__(self) -> str:
        return f"UserRecord(id={self.id!r}, state={self.state.value})"


def dump_index(index: Index) -> str:
    return json.dumps({"v": FORMAT_VERSION, "order": list(index.order), "current": index.current})


def load_index(text: str) -> Index:
    """Raises ``ValueError`` on anything but a well-formed index."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
        raise ValueError("unknown index format")
    order = data.get("order")
    current = data.get("current")
    if not isinstance(order, list) or not all(isinstance(i, str) for i in order):
        raise ValueError("index order is not a list of ids")
    if current is not None and not isinstance(current, str):
        raise ValueError("index current is not an id")
    return Index(tuple(dict.fromkeys(order)), current)


def dump_user(record: UserRecord) -> str:
    identities = record.identities
    raw_identities = (
        [[i.id, i.provider_type] for i in identities] if isinstance(identities, tuple) else identities
    )
    profile = record.profile
    if isinstance(profile, Profile):
        raw_profile, profile_type = dict(profile.data), profile.type
    elif profile is None:
        raw_profile, profile_type = None, None
    else:
        raw_profile, profile_type = profile
    return json.dumps(
        {
            "v": FORMAT_VERSION,
            "id": record.id,
            "state": record.state.value,
            "access_token": record.access_token,
            "refresh_token": record.refresh_token,
            "device_id": record.device_id,
            "identities": raw_identities,
            "profile": raw_profile,
            "profile_type": profile_type,
            "provider_type": record.provider_type,
            "last_used": record.last_used,
        },
        default=str,
    )


_STATES = {s.value: s for s in UserState}
_decode = json.JSONDecoder().raw_decode
_TEXT_OR_NONE = (str, type(None))


def load_user(text: str) -> UserRecord:
    """Raises ``ValueError`` on a malformed record (never echoing its content).

    This runs once per user at start-up (100,000 users must restore in under a
    second), so it checks types inline and leaves identities and profile raw;
    ``User`` converts them on first use.
    """
    # raw_decode skips json.loads' two whitespace regex scans: a third of the parse cost here.
    data, end = _decode(text)
    if end != len(text) or type(data) is not dict or data.get("v") != FORMAT_VERSION:
        raise ValueError("unknown user record format")
    user_id = data.get("id")
    state = _STATES.get(data.get("state"))  # type: ignore[arg-type]
    access, refresh = data.get("access_token"), data.get("refresh_token")
    device_id, provider_type = data.get("device_id"), data.get("provider_type")
    identities = data.get("identities") or []
    profile = data.get("profile")
    profile_type = data.get("profile_type") or "normal"
    last_used = data.get("last_used") or 0.0
    if (
        type(user_id) is not str
        or not user_id
        or state is None
        or not isinstance(access, _TEXT_OR_NONE)
        or not isinstance(refresh, _TEXT_OR_NONE)
        or not isinstance(device_id, _TEXT_OR_NONE)
        or not isinstance(provider_type, _TEXT_OR_NONE)
        or type(identities) is not list
        or not (profile is None or type(profile) is dict)
        or type(profile_type) is not str
        or not isinstance(last_used, int | float)
    ):
        raise ValueError("malformed user record")
    return UserRecord(
        id=user_id,
        state=state,
        access_token=access,
        refresh_token=refresh,
        device_id=device_id,
        identities=identities,
        profile=None if profile is None else (profile, profile_type),
        provider_type=provider_type,
        last_used=float(last_used),
    )


def identities_from_raw(raw: list[Any]) -> tuple[Identity, ...]:
    """Stored ``[[id, provider_type], ...]`` as Identity values; malformed entries are dropped."""
    return tuple(
        Identity(item[0], item[1])
        for item in raw
        if type(item) is list and len(item) == 2 and type(item[0]) is str and type(item[1]) is str
    )
