"""Immutable values a user carries: identities, profile, tokens, state and connectivity."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from typing import Any, Final, NoReturn

import attrs

from .errors import AppError

__all__ = [
    "Connectivity", "ConnectivityState", "FrozenDict", "FrozenList", "Identity", "Profile", "Tokens",
    "UserState", "freeze",
]


class UserState(enum.Enum):
    """Where a user is in its life. Values match the Node SDK's strings."""

    LOGGED_IN = "LoggedIn"
    LOGGED_OUT = "LoggedOut"
    REMOVED = "Removed"


class ConnectivityState(enum.Enum):
    """The sub-state of a logged-in session (values are what the bindings show)."""

    ONLINE = "online"
    REFRESHING = "refreshing"
    OFFLINE = "offline"


@attrs.frozen
class Connectivity:
    """Where a logged-in session (or the App, aggregated) stands with its server.

    ``error`` is the last failure and ``next_attempt`` the wall-clock time (``time.time()``)
    of the next try, both only when ``state`` is ``OFFLINE`` (``next_attempt`` is None when
    no attempt is scheduled).
    """

    state: ConnectivityState
    error: AppError | None = attrs.field(default=None, eq=False)
    next_attempt: float | None = None

    @property
    def online(self) -> bool:
        return self.state is not ConnectivityState.OFFLINE

    def retry_in(self, now: float | None = None) -> float | None:
        """Seconds until the next attempt (0 when due), or None if none is scheduled."""
        if self.next_attempt is None:
            return None
        return max(0.0, self.next_attempt - (time.time() if now is None else now))

    def describe(self, now: float | None = None) -> str:
        """``"online"``, ``"refreshing"``, ``"offline — retrying in 8 s"`` or ``"offline"``."""
        if self.state is not ConnectivityState.OFFLINE:
            return str(self.state.value)
        wait = self.retry_in(now)
        if wait is None:
            return "offline"
        return f"offline — retrying in {max(1, round(wait))} s"


@attrs.frozen
class Identity:
    """One login identity of a user (``provider_type`` as on the wire, e.g. ``"anon-user"``)."""

    id: str
    provider_type: str


@attrs.frozen(repr=False)
class Tokens:
    """A user's current token pair. ``repr`` never shows them."""

    access_token: str
    refresh_token: str

    def __repr__(self) -> str:
        return "Tokens(<redacted>)"


def _read_only(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only: copy it (dict(x), list(x)) to change it")


class FrozenDict(dict[str, Any]):
    """A ``dict`` that cannot change: every mutation raises ``TypeError``.

    A ``dict`` subclass rather than a ``MappingProxyType`` so that it still is what
    callers expect of JSON data: equal to a plain dict, accepted by ``json.dumps``,
    copied and pickled as itself. Its values are frozen too (see :func:`freeze`).
    """

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenList(list[Any]):
    """A ``list`` that cannot change (every mutation raises ``TypeError``); equal to a plain list."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = clear = extend = insert = pop = remove = reverse = sort = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


def freeze(value: Any) -> Any:
    """``value`` with every dict and list in it (at any depth) replaced by a read-only copy."""
    kind = type(value)
    if kind is dict or kind is FrozenDict:
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if kind is list or kind is FrozenList:
        return FrozenList([freeze(v) for v in value])
    if kind is tuple:
        return tuple(freeze(v) for v in value)
    if isinstance(value, bytearray):
        return bytes(value)
    return value


_EMPTY: Final = FrozenDict()


def _freeze_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return freeze(dict(value)) if value else _EMPTY


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


@attrs.frozen
class Profile:
    """Profile metadata from the login providers (the ``data`` of ``GET /auth/profile``).

    ``data`` is the raw document; the properties read its standard keys.
    """

    data: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_mapping)
    type: str = "normal"

    @property
    def name(self) -> str | None:
        return _text(self.data, "name")

    @property
    def email(self) -> str | None:
        return _text(self.data, "email")

    @property
    def picture_url(self) -> str | None:
        return _text(self.data, "picture_url") or _text(self.data, "picture")

    @property
    def first_name(self) -> str | None:
        return _text(self.data, "first_name")

    @property
    def last_name(self) -> str | None:
        return _text(self.data, "last_name")

    @property
    def gender(self) -> str | None:
        return _text(self.data, "gender")

    @property
    def birthday(self) -> str | None:
        return _text(self.data, "birthday")

    @property
    def min_age(self) -> str | None:
        return _text(self.data, "min_age")

    @property
    def max_age(self) -> str | None:
        return _text(self.data, "max_age")
