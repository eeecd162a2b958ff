"""The users of an App by id, in storage order; a restored user is built on first use.

Restoring 100,000 users used to build 100,000 ``User`` objects in ``App.open()``, most of
which an app never reads (it reads the current user). The registry keeps each restored
user as its stored record, already checked at restore (``Persistence.restore`` dropped what
would not load), and builds the ``User`` when it is first reached: by id, while iterating
the users in order, or all at once (``all_users``). Each is built once, so there is still
one ``User`` per id; apart from when the building happens, the App sees the same users.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Mapping
from typing import cast

from ._persistence import UserFactory, build_user
from ._user import User

__all__ = ["UserRegistry"]


class UserRegistry:
    """Users by id, in storage order. ``factory`` builds a restored user from its fields."""

    __slots__ = ("_building", "_entries", "_factory", "_unbuilt")

    def __init__(self, factory: UserFactory[User]) -> None:
        self._factory = factory
        # A value is the built User or, until first use, the user's stored record (a str).
        self._entries: dict[str, User | str] = {}
        self._unbuilt = 0
        # Reading the users builds them, and a UI may read from its own thread while the App's
        # loop reads too: both must get the same User.
        self._building = threading.Lock()

    def restore(self, records: Mapping[str, str], *, take: bool = False) -> None:
        """Add restored users (as their records). A user already here is replaced but keeps
        its place; new ones come last (``dict.update``'s rule). With ``take``, ``records`` is
        a dict nothing else holds, and it becomes the registry's own when the registry is
        empty (no copy of 100,000 entries at start-up)."""
        with self._building:
            entries = self._entries
            if not entries:
                if take and type(records) is dict:
                    self._entries = cast("dict[str, User | str]", records)
                else:
                    self._entries = dict(records)  # a copy: it will hold built users too
                self._unbuilt = len(records)
            else:
                entries.update(records)
                self._unbuilt = sum(1 for entry in entries.values() if type(entry) is str)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        """The user ids, in order (builds nothing)."""
        return iter(self._entries)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._entries

    def get(self, user_id: str) -> User | None:
        entry = self._entries.get(user_id)
        if type(entry) is str:
            return self._built(user_id, entry)
        return cast("User | None", entry)

    def __setitem__(self, user_id: str, user: User) -> None:
        with self._building:
            if type(self._entries.get(user_id)) is str:
                self._unbuilt -= 1
            self._entries[user_id] = user

    def __delitem__(self, user_id: str) -> None:
        with self._building:
            if type(self._entries.pop(user_id)) is str:
                self._unbuilt -= 1

    def values(self) -> Iterator[User]:
        """The users in order, each built as it is reached (a loop that stops early builds
        only the users before it stopped)."""
        if not self._unbuilt:
            yield from cast("dict[str, User]", self._entries).values()
            return
        for user_id, entry in self._entries.items():
            # Replacing the value of a key does not disturb the dict's iteration.
            yield self._built(user_id, entry) if type(entry) is str else cast(User, entry)

    def built(self) -> dict[str, User]:
        """Every user, built, by id in order (a new dict)."""
        if self._unbuilt:
            entries = self._entries
            # The users built here live as long as the App: with the cyclic GC on, building
            # 100,000 of them rescans the growing heap over and over.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                with self._building:
                    factory = self._factory
                    for user_id, entry in entries.items():
                        if type(entry) is str:
                            entries[user_id] = build_user(entry, factory)
                    self._unbuilt = 0
            finally:
                if gc_was_enabled:
                    gc.enable()
        return dict(cast("dict[str, User]", self._entries))

    def _built(self, user_id: str, record: str) -> User:
        with self._building:
            entry = self._entries.get(user_id)
            if entry is None:
                return build_user(record, self._factory)  # removed meanwhile: not put back
            if type(entry) is not str:
                return cast(User, entry)  # built by another thread meanwhile
            user = self._entries[user_id] = build_user(entry, self._factory)
            self._unbuilt -= 1
            return user
