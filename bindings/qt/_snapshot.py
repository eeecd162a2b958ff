"""Immutable pictures of a user, taken on the thread that changed it.

The App's data belongs to its core thread. Rather than reading a ``User`` from the
GUI thread while the core thread mutates it, every stream value is turned into a
snapshot where it is emitted, and only the snapshot crosses to the GUI thread.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Mapping
from typing import Any

import attrs

from appusers import Connectivity, Profile, User, UserState

__all__ = ["Row", "UserSnapshot", "plain"]


def plain(value: Any) -> Any:
    """``value`` as data Qt and QML understand: dicts, lists, str, numbers, bool, None, datetime.

    EJSON values (ObjectId, Decimal128, Int64...) become their string form.
    """
    if value is None or isinstance(value, bool | int | float | str | datetime.datetime):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


@attrs.frozen
class UserSnapshot:
    """Everything a :class:`QtUser` shows, as of one moment."""

    user_id: str
    state: UserState
    profile: Profile
    custom_data: Mapping[str, Any]
    identities: tuple[tuple[str, str], ...]
    ref: weakref.ReferenceType[User] = attrs.field(eq=False, repr=False)
    #: The LoggedIn sub-state (None when not logged in).
    connectivity: Connectivity | None = None

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        """Read ``user`` now (call on the thread that owns it)."""
        return cls(
            user.id,
            user.state,
            user.profile,
            plain(user.custom_data),
            tuple((i.id, i.provider_type) for i in user.identities),
            weakref.ref(user),
            user.connectivity,
        )


@attrs.frozen
class Row:
    """One line of the users list: cheap enough to take for 100,000 users."""

    user_id: str
    state: UserState
    name: str
    email: str
    provider_type: str
    ref: weakref.ReferenceType[User] = attrs.field(eq=False, repr=False)

    @classmethod
    def of(cls, user: User) -> Row:
        profile = user.profile
        identities = user.identities
        return cls(
            user.id,
            user.state,
            profile.name or "",
            profile.email or "",
            identities[0].provider_type if identities else "",
            weakref.ref(user),
        )
