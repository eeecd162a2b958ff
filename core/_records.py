"""How an App's users are laid out in a :class:`~appusers.storage.Storage`.

Keys, all under ``appusers:<app id>:``::

    index           {"v": 1, "order": [user ids, storage order], "current": id | null}
    user:<user id>  one tab-separated line of 11 fields:
                    u1, id, state, access token, refresh token, device id, provider type,
                    last used (epoch s), profile type, identities (JSON [[id, type]...]),
                    profile data (JSON object, or empty)

One record per user keeps a token refresh to one small value; the index keeps
the order and the current user. Both are written together with ``Storage.update``.
A record is a line rather than a JSON object because start-up checks one per
user (``check_user``) and building a user parses one: splitting a line is ten
times cheaper than parsing JSON, and identities and profile (JSON, which escapes
tabs) are only parsed when first read. Empty
fields mean "none"; tokens, ids and types never contain tabs (checked on write).
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

import attrs

from ._models import Identity, Profile, UserState

__all__ = [
    "FORMAT_VERSION", "STATES", "Index", "Keys", "UserRecord", "check_user", "dump_index", "dump_user",
    "identities_from_raw", "load_index", "load_user", "match_written", "parse_index",
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
    identities: tuple[Identity, ...] | str
    profile: Profile | tuple[str, str] | None
    provider_type: str | None
    last_used: float

    def __repr__(self) -> str:
        return f"UserRecord(id={self.id!r}, state={self.state.value})"


def dump_index(index: Index) -> str:
    return json.dumps({"v": FORMAT_VERSION, "order": list(index.order), "current": index.current})


def load_index(text: str) -> Index:
    """Raises ``ValueError`` on anything but a well-formed index."""
    order, current = parse_index(text)
    return Index(tuple(dict.fromkeys(order)), current)


def parse_index(text: str) -> tuple[list[str], str | None]:
    """The stored order (duplicates left in: removing them hashes every id, and restore's
    common case has to hash them anyway) and current user id. Raises ``ValueError`` where
    ``load_index`` does."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
        raise ValueError("unknown index format")
    order = data.get("order")
    current = data.get("current")
    # set(map(type, ...)): the index lists every user (100,000 ids at start-up), and JSON
    # gives exact types.
    if not isinstance(order, list) or not set(map(type, order)) <= {str}:
        raise ValueError("index order is not a list of ids")
    if current is not None and not isinstance(current, str):
        raise ValueError("index current is not an id")
    return order, current


def _field(value: str | None) -> str:
    if value is None:
        return ""
    if "\t" in value or "\n" in value:
        raise ValueError("a stored field contains a tab or a newline")
    return value


def dump_user(record: UserRecord) -> str:
    """The record as one tab-separated line (see the module docstring)."""
    identities = record.identities
    raw_identities = (
        identities if isinstance(identities, str)
        else json.dumps([[i.id, i.provider_type] for i in identities])
    )
    profile = record.profile
    if isinstance(profile, Profile):
        raw_profile, profile_type = json.dumps(dict(profile.data), default=str), profile.type
    elif profile is None:
        raw_profile, profile_type = "", ""
    else:
        raw_profile, profile_type = profile
    return "\t".join(
        (
            _TAG,
            _field(record.id),
            record.state.value,
            _field(record.access_token),
            _field(record.refresh_token),
            _field(record.device_id),
            _field(record.provider_type),
            repr(float(record.last_used)),
            _field(profile_type),
            raw_identities,  # json.dumps escapes tabs and newlines inside strings
            raw_profile,
        )
    )


#: A stored state name to its state.
STATES = _STATES = {s.value: s for s in UserState}
_TAG = "u1"
_FIELDS = 11
_new_record = tuple.__new__  # a NamedTuple without its keyword-binding __new__ (100,000 per restore)


def load_user(text: str) -> UserRecord:
    """Raises ``ValueError`` on a malformed record (never echoing its content).

    This runs once per user at start-up (100,000 users must restore in under a
    second), so a record is a tab-separated line, split in one call, and its
    identities and profile stay JSON text until ``User`` first reads them.
    """
    fields = text.split("\t")
    if len(fields) != _FIELDS or fields[0] != _TAG:
        raise ValueError("unknown user record format")
    (_, user_id, state_name, access, refresh, device_id, provider_type,
     last_used, profile_type, ids, prof) = fields
    state = _STATES.get(state_name)
    if not user_id or state is None or not ids.startswith("["):
        raise ValueError("malformed user record")
    # In UserRecord's field order: id, state, access_token, refresh_token, device_id,
    # identities, profile, provider_type, last_used.
    return _new_record(UserRecord, (
        user_id, state, access or None, refresh or None, device_id or None, ids,
        (prof, profile_type or "normal") if prof else None, provider_type or None, float(last_used),
    ))


_ANY = r"[^\t]*+"
#: A record as ``dump_user`` writes it for a logged-in or logged-out user: 11 fields, the
#: identities a JSON list, last used as ``repr(float)`` writes it. Everything it accepts,
#: ``load_user`` accepts too; what it refuses gets ``load_user``'s own verdict.
_WRITTEN = re.compile(
    r"u1\t([^\t]++)\t(?:LoggedIn|LoggedOut)\t" + "\t".join([_ANY] * 4)
    + r"\t-?(?:[0-9]++\.[0-9]*+(?:e[-+][0-9]++)?|[0-9]++e[-+][0-9]++|inf|nan)\t"
    + _ANY + r"\t\[" + _ANY + r"\t" + _ANY
)


#: The match of a record as ``dump_user`` writes it (group 1: the user id), or None.
match_written = _WRITTEN.fullmatch


def check_user(text: str, user_id: str) -> bool:
    """Whether the record of ``user_id`` restores a user: True if it loads and is that user,
    not removed; False if it is to be forgotten (removed, or another user's). Raises
    ``ValueError`` where ``load_user`` would.

    Restoring checks every record before any user is built (a record that would not load is
    dropped at start-up, with a storage issue): one regular expression match per record
    (a third of ``load_user``'s cost), ``load_user`` only for a record it does not match.
    """
    found = match_written(text)
    if found is not None and found[1] == user_id:
        return True
    record = load_user(text)
    return record.state is not UserState.REMOVED and record.id == user_id


def identities_from_raw(raw: str) -> tuple[Identity, ...]:
    """Stored ``[[id, provider_type], ...]`` as Identity values; malformed entries are dropped."""
    try:
        items = json.loads(raw)
    except ValueError:
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(
        Identity(item[0], item[1])
        for item in items
        if type(item) is list and len(item) == 2 and type(item[0]) is str and type(item[1]) is str
    )
