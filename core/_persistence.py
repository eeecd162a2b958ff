"""Where an App's users are kept between runs: save, purge and restore, over a ``Storage``.

The layout of the records is ``_records``; this module decides when they are
read and written. The App hands it finished records and indexes (it knows the
current user and the order); restoring hands the App back the checked record of
each user, which ``build_user`` turns into a user through a factory when the App
first needs it, so this module never imports ``User``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import TypeVar, cast

from ._lazy import lazy_logger
from ._models import Identity, Profile, UserState
from ._records import (
    STATES,
    Index,
    Keys,
    UserRecord,
    check_user,
    dump_index,
    dump_user,
    match_written,
    parse_index,
)
from .errors import StorageError
from .storage import Storage, StorageIssue

__all__ = ["Persistence", "Restored", "build_user"]

_log = lazy_logger("appusers", globals())
# The user id of a match_written match (TypeError for None, no match).
_group_1 = cast("Callable[[re.Match[str] | None], str]", itemgetter(1))
_U = TypeVar("_U")
# An enum member read through its class costs ten times a global (build_user runs per user).
_LOGGED_IN, _LOGGED_OUT = UserState.LOGGED_IN, UserState.LOGGED_OUT

#: Builds a user from its restored fields (``User``'s positional constructor, App bound).
UserFactory = Callable[
    [str, UserState, str | None, str | None, str | None, tuple[Identity, ...] | str,
     Profile | tuple[str, str] | None, str | None, float],
    _U,
]


class Restored:
    """What :meth:`Persistence.restore` found: the record of each user to restore (by id, in
    storage order; each one loads, see ``build_user``), the stored current user id, the
    records to purge and what was repaired."""

    __slots__ = ("current", "issues", "purge", "records")

    def __init__(
        self, records: dict[str, str], current: str | None, purge: dict[str, str | None],
        issues: list[StorageIssue],
    ) -> None:
        self.records = records
        self.current = current
        self.purge = purge
        self.issues = issues


def build_user(record: str, build: UserFactory[_U]) -> _U:
    """``build`` the user of a record that :meth:`Persistence.restore` kept.

    Restore checked the record (it loads, see ``_records.check_user``), so this only splits
    it, straight into ``build``'s arguments: building every user runs it 100,000 times, and
    a ``UserRecord`` in between was a fifth of that.
    """
    (_, user_id, state_name, access, refresh, device_id, provider_type, last_used,
     profile_type, identities, profile) = record.split("\t")  # the layout of ``_records``
    state = STATES[state_name]
    if state is _LOGGED_IN:
        # Tokens were decoded before they were stored; a damaged one is one without
        # a JWT's shape, and its user comes back logged out (core's rule).
        if not (access.count(".") == 2 and refresh.count(".") == 2):
            state, access, refresh = _LOGGED_OUT, "", ""
    else:
        access = refresh = ""
    return build(
        user_id, state, access or None, refresh or None, device_id or None, identities,
        (profile, profile_type or "normal") if profile else None, provider_type or None,
        float(last_used),
    )


def _all_written(
    items: Mapping[str, str], index_key: str, head: str, order: list[str]
) -> dict[str, str] | None:
    """Restore's common case, checked in C loops (no Python frame per user): the items are
    the index and one record per listed user, each as ``dump_user`` writes it and under the
    key of the user it holds. Then the records by id in index order; otherwise None (the
    caller checks record by record).

    The records are taken in the storage's order, so no key is built and looked up per user;
    their ids are compared with the keys (which are unique) and then with the index.
    """
    if len(items) != len(order) + 1:
        return None  # duplicates in the index, unlisted records or missing ones
    keys, raws = list(items), list(items.values())
    at = keys.index(index_key)
    del keys[at], raws[at]
    try:
        # _group_1 of a record the expression refuses (None) raises TypeError.
        ids = list(map(_group_1, map(match_written, raws)))
    except TypeError:
        return None
    if list(map(head.__add__, ids)) != keys:
        return None  # a record under another user's key, or another kind of key
    if ids == order:
        # Holds only strings, so the cyclic GC never tracks it, however many users there are.
        return dict(zip(ids, raws, strict=True))
    by_id = dict(zip(ids, raws, strict=True))
    found = dict(zip(order, map(by_id.get, order), strict=True))
    # As many distinct listed ids as records, each with a record: the index is a permutation.
    if len(found) != len(by_id) or None in found.values():
        return None
    return cast("dict[str, str]", found)


class Persistence:
    """One App's records in ``storage`` (keys under ``appusers:<app id>:``)."""

    __slots__ = ("_keys", "_written", "storage")

    def __init__(self, storage: Storage, app_id: str) -> None:
        self.storage = storage
        self._keys = Keys.for_app(app_id)
        # The index as this App last read or wrote it. The index lists every user, so
        # writing it with each record would make a token refresh cost O(all users) on disk
        # (2.6 MB at 100,000 users); it is written only when it changed.
        self._written: Index | None = None

    async def save(self, record: UserRecord, index: Index) -> None:
        """Write one user's record, and the index if it changed, as one atomic update."""
        keys = self._keys
        update = {keys.user(record.id): dump_user(record)}
        if index != self._written:
            update[keys.index] = dump_index(index)
        await self.storage.update(update)
        self._written = index

    async def purge(self, user_id: str, index: Index) -> None:
        """Forget one user's record and write the index."""
        keys = self._keys
        await self.storage.update({keys.user(user_id): None, keys.index: dump_index(index)})
        self._written = index

    async def restore(self) -> Restored:
        """Read and check every record of the App (no network). No user is built here: the
        App builds each one on first use (``build_user``)."""
        items = await self.storage.items(self._keys.prefix)
        issues = list(self.storage.drain_issues())
        index = Index()
        user_key = self._keys.user
        head = user_key("")  # the key of a user is head + its id
        raw_index = items.get(self._keys.index)
        if raw_index is not None:
            try:
                stored_order, current = parse_index(raw_index)
            except ValueError as exc:
                issues.append(StorageIssue("record-dropped", f"unreadable user index: {exc}"))
            else:
                found = _all_written(items, self._keys.index, head, stored_order)
                if found is not None:
                    self._written = Index(tuple(found), current)
                    return Restored(found, current, {}, issues)
                index = self._written = Index(tuple(dict.fromkeys(stored_order)), current)
        order = list(index.order)
        if len(items) - (raw_index is not None) > len(order):
            # Records the index does not list (written by an older or crashed writer): keep them, last.
            indexed = set(order)
            for key in items:
                user_id = self._keys.user_id_of(key)
                if user_id is not None and user_id not in indexed:
                    order.append(user_id)
        purge: dict[str, str | None] = {}
        # This runs once per user at start-up, so the common case (every listed user has a
        # record as ``dump_user`` writes it, of that user) is checked in C loops: no Python
        # frame per user. Anything else (a missing, odd or unreadable record) gets the
        # per-record verdict below.
        # None where a record is missing: match_written refuses it below, with TypeError.
        raws = cast("list[str]", list(map(items.get, map(head.__add__, order))))
        written_ids: list[str] | None
        try:
            # So does _group_1 of a record the expression refuses (None).
            written_ids = list(map(_group_1, map(match_written, raws)))
        except TypeError:
            written_ids = None
        if written_ids == order:
            # Holds only strings, so the cyclic GC never tracks it, however many users there are.
            return Restored(dict(zip(order, raws, strict=True)), index.current, purge, issues)
        del raws, written_ids
        records: dict[str, str] = {}
        get = items.get
        for user_id in order:
            raw = get(head + user_id)
            if raw is None:
                continue
            # check_user's common case, inlined: this loop runs once per user at start-up.
            written = match_written(raw)
            if written is not None and written[1] == user_id:
                records[user_id] = raw
                continue
            try:
                keep = check_user(raw, user_id)
            except (ValueError, KeyError, TypeError) as exc:
                issues.append(StorageIssue("record-dropped", f"unreadable record of user {user_id}: {exc}"))
                purge[user_key(user_id)] = None
                continue
            if keep:
                records[user_id] = raw
            else:
                purge[user_key(user_id)] = None
        return Restored(records, index.current, purge, issues)

    async def finish_restore(self, purge: dict[str, str | None], index: Index) -> None:
        """Drop the records :meth:`restore` found removed or unreadable (best effort)."""
        if not purge:
            return
        purge[self._keys.index] = dump_index(index)
        try:
            await self.storage.update(purge)
            self._written = index
        except StorageError as exc:
            _log.warning("could not purge removed users: %s", type(exc).__name__)
