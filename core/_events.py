"""The typed, immutable events published on ``user.events`` and ``app.events``.

Listeners receive what changed, not a bare "something changed" ping.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from ._models import Identity, Profile, UserState
from .storage import StorageIssue

__all__ = [
    "AccessTokenRefreshed",
    "AppEvent",
    "CurrentUserChanged",
    "CurrentUserLinked",
    "CustomDataRefreshed",
    "IdentitiesLinked",
    "LoggedIn",
    "LoggedOut",
    "LogoutCause",
    "ProfileRefreshed",
    "StorageRecovered",
    "UserEvent",
    "UsersChanged",
]


class LogoutCause(enum.Enum):
    """Why a user stopped being logged in."""

    USER_REQUEST = "user request"
    REFRESH_TOKEN_REJECTED = "refresh token rejected"
    #: The server answered ``UserDisabled``: an administrator disabled the user and its
    #: sessions ended; unlike an expired session, logging in again will not help.
    USER_DISABLED = "user disabled"
    REMOVED = "removed"
    DELETED = "deleted"


@attrs.frozen
class UserEvent:
    """Base of every event on ``user.events``."""

    user_id: str


@attrs.frozen
class LoggedIn(UserEvent):
    """The user logged in (again): it has fresh tokens."""

    provider_type: str


@attrs.frozen
class LoggedOut(UserEvent):
    """The user has no tokens any more. ``state`` is LOGGED_OUT, or REMOVED."""

    cause: LogoutCause
    state: UserState


@attrs.frozen
class AccessTokenRefreshed(UserEvent):
    """A new access token arrived (proactively, after a 401, or on request)."""


@attrs.frozen
class CustomDataRefreshed(UserEvent):
    """``custom_data`` changed with a new access token."""

    custom_data: Mapping[str, Any]


@attrs.frozen
class ProfileRefreshed(UserEvent):
    profile: Profile
    identities: tuple[Identity, ...]


@attrs.frozen
class IdentitiesLinked(UserEvent):
    """An identity was linked; ``identities`` is the full new list."""

    identities: tuple[Identity, ...]


@attrs.frozen
class AppEvent:
    """Base of every event on ``app.events``."""


@attrs.frozen
class CurrentUserChanged(AppEvent):
    user_id: str | None


@attrs.frozen
class CurrentUserLinked(AppEvent):
    """The current user linked an identity (linking makes a user current, as in core);
    ``identities`` is its full new list. Follows the user's own ``IdentitiesLinked``."""

    user_id: str
    identities: tuple[Identity, ...]


@attrs.frozen
class UsersChanged(AppEvent):
    user_ids: tuple[str, ...]


@attrs.frozen
class StorageRecovered(AppEvent):
    """The storage repaired something while opening (e.g. quarantined a corrupt file)."""

    issue: StorageIssue
