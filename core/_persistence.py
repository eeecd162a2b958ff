"""Where an App's users are kept between runs: save, purge and restore, over a ``Storage``.

The layout of the records is ``_records``; this module decides when they are
read and written. The App hands it finished records and indexes (it knows the
current user and the order); restoring hands the App back the checked record of
each user, which ``build_user`` turns into a user through a factory when the App
first needs it, so this module never imports ``User``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from ._models import Identity, Profile, UserState
from ._records import (
    Index,
    Keys,
    UserRecord,
    check_user,
    dump_index,
    dump_user,
    load_index,
    load_user,
    match_written,
)
from .errors import StorageError
from .storage import Storage, StorageIssue

__all__ = ["Persistence", "Restored", "build_user"]

_log = logging.getLogger("appusers")
_U = TypeVar("_U")

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
    """``build`` the user of a record that :meth:`Persistence.restore` kept."""
    user = load_user(record)  # a UserRecord's fields are in ``build``'s order
    if user.state is UserState.LOGGED_IN:
        access, refresh = user.access_token, user.refresh_token
        # Tokens were decoded before they were stored; a damaged one is one without
        # a JWT's shape, and its user comes back logged out (core's rule).
        if access and refresh and access.count(".") == 2 and refresh.count(".") == 2:
            return build(*user)
        return build(user.id, UserState.LOGGED_OUT, None, None, *user[4:])
    if user.access_token is None and user.refresh_token is None:
        return build(*user)
    return build(user.id, user.state, None, None, *user[4:])


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
        raw_index = items.get(self._keys.index)
        if raw_index is not None:
            try:
                index = self._written = load_index(raw_index)
            except ValueError as exc:
                issues.append(StorageIssue("record-dropped", f"unreadable user index: {exc}"))
        user_key = self._keys.user
        head = user_key("")  # the key of a user is head + its id
        order = list(index.order)
        if len(items) - (raw_index is not None) > len(order):
            # Records the index does not list (written by an older or crashed writer): keep them, last.
            indexed = set(order)
            for key in items:
                user_id = self._keys.user_id_of(key)
                if user_id is not None and user_id not in indexed:
                    order.append(user_id)
        purge: dict[str, str | None] = {}
        # Holds only strings, so the cyclic GC never tracks it, however many users there are.
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
