"""The user lifecycle, as data, run by ``transitions``: three top-level states, and inside
``LoggedIn`` the connectivity sub-states ``online``, ``refreshing`` and ``offline``.

One ``Machine`` serves every user of the process. Users are *not* registered
with ``add_model`` (an O(n) scan per call, and it would keep removed users
alive); instead each trigger is run for one user with ``Event.trigger(user)``,
which reads and writes only that user's ``state`` attribute. So a user costs
nothing here beyond its ``state`` field, and 100,000 users are as cheap as one.

``LoggedIn`` is a composite state: its sub-states are a machine of their own
(``CONNECTIVITY_CONFIG``, model attribute ``_reach``) that exists only while the user
is logged in. :func:`fire` starts it in ``online`` whenever a transition enters
``LoggedIn`` (a log-in reached the server) and ends it (``_reach`` is None) when one
leaves it, through the model's ``enter_session``/``leave_session``. It is a separate
flat machine rather than ``transitions``' ``HierarchicalMachine`` because the top-level
``state`` must stay the plain ``UserState`` (every stream and binding reads it) and
because a hierarchical trigger took 594 us here (a loaded 2-core machine), paid
on every log-in and log-out of 100,000 users.

Side effects of entering a state (dropping tokens) are machine callbacks;
publishing events is not: the caller publishes after the transition returns,
outside the machine, so a subscriber can neither break nor undo a transition.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from transitions import Machine, MachineError

from ._models import ConnectivityState, UserState

__all__ = [
    "CONNECTIVITY_CONFIG",
    "MACHINE_CONFIG",
    "InvalidTransition",
    "StatefulUser",
    "allowed",
    "fire",
    "fire_connectivity",
]

LOGGED_IN, LOGGED_OUT, REMOVED = UserState.LOGGED_IN, UserState.LOGGED_OUT, UserState.REMOVED
ONLINE, REFRESHING, OFFLINE = (
    ConnectivityState.ONLINE, ConnectivityState.REFRESHING, ConnectivityState.OFFLINE
)

#: The whole lifecycle. ``is_anonymous`` and ``_drop_tokens`` are looked up on the user, whose
#: ``_state`` the machine writes: a user has no public way to change its state.
MACHINE_CONFIG: Final[dict[str, Any]] = {
    "states": [
        {"name": LOGGED_IN},
        {"name": LOGGED_OUT, "on_enter": ["_drop_tokens"]},
        {"name": REMOVED, "on_enter": ["_drop_tokens"], "final": True},
    ],
    "transitions": [
        # Logging in again with a known identity keeps the same user object.
        {"trigger": "log_in", "source": [LOGGED_IN, LOGGED_OUT], "dest": LOGGED_IN},
        # An anonymous user cannot log back in, so logging it out removes it (core's rule).
        {"trigger": "log_out", "source": LOGGED_IN, "dest": REMOVED, "conditions": "is_anonymous"},
        {"trigger": "log_out", "source": LOGGED_IN, "dest": LOGGED_OUT},
        {"trigger": "reject_refresh", "source": LOGGED_IN, "dest": REMOVED, "conditions": "is_anonymous"},
        {"trigger": "reject_refresh", "source": LOGGED_IN, "dest": LOGGED_OUT},
        {"trigger": "remove", "source": [LOGGED_IN, LOGGED_OUT], "dest": REMOVED},
        {"trigger": "delete", "source": LOGGED_IN, "dest": REMOVED},
    ],
    "initial": None,
    "auto_transitions": False,
    "send_event": False,
    "model_attribute": "_state",
}


#: The sub-states of LoggedIn. Driven by the request pipeline (through the App's connectivity
#: tracker): a failed attempt loses the server, an answer reaches it, a token refresh is
#: ``refreshing`` while in flight.
CONNECTIVITY_CONFIG: Final[dict[str, Any]] = {
    "states": [{"name": ONLINE}, {"name": REFRESHING}, {"name": OFFLINE}],
    "transitions": [
        # offline -> offline: a later failure (new error, new time of the next attempt).
        {"trigger": "lose_server", "source": [ONLINE, REFRESHING, OFFLINE], "dest": OFFLINE},
        {"trigger": "reach_server", "source": OFFLINE, "dest": ONLINE},
        {"trigger": "begin_refresh", "source": [ONLINE, OFFLINE], "dest": REFRESHING},
        {"trigger": "end_refresh", "source": REFRESHING, "dest": ONLINE},
    ],
    "initial": None,
    "auto_transitions": False,
    "send_event": False,
    "model_attribute": "_reach",
}


class StatefulUser(Protocol):
    _state: UserState
    _reach: ConnectivityState | None

    def is_anonymous(self) -> bool: ...

    def _drop_tokens(self) -> None: ...



class InvalidTransition(Exception):
    """A trigger that the user's current state does not allow (a bug, not user input)."""


_MACHINE: Final = Machine(model=None, **MACHINE_CONFIG)
_CONNECTIVITY: Final = Machine(model=None, **CONNECTIVITY_CONFIG)


def fire(user: StatefulUser, trigger: str) -> UserState:
    """Run ``trigger`` for ``user``; return the state it ended in."""
    before = user._state
    try:
        ok = _MACHINE.events[trigger].trigger(user)
    except MachineError as exc:
        raise InvalidTransition(str(exc)) from None
    if not ok:
        raise InvalidTransition(f"{trigger} was not allowed from {user._state.value}")
    # The sub-machine of LoggedIn: (re)started on entering it, ended on leaving it. Hooks are
    # optional so that a bare model (tests, tools) needs only the top-level ones.
    if user._state is LOGGED_IN:
        hook = getattr(user, "enter_session", None)
    else:
        hook = getattr(user, "leave_session", None) if before is LOGGED_IN else None
    if hook is not None:
        hook()
    return user._state


def allowed(state: UserState, trigger: str) -> bool:
    """Whether ``trigger`` may fire from ``state`` (conditions aside)."""
    return state.name in _MACHINE.events[trigger].transitions


def fire_connectivity(user: StatefulUser, trigger: str) -> ConnectivityState:
    """Run a connectivity ``trigger`` for a logged-in ``user``; return its new sub-state."""
    if user._state is not LOGGED_IN or user._reach is None:
        raise InvalidTransition(f"{trigger}: connectivity is a sub-state of LoggedIn only")
    try:
        ok = _CONNECTIVITY.events[trigger].trigger(user)
    except MachineError as exc:
        raise InvalidTransition(str(exc)) from None
    if not ok:
        raise InvalidTransition(f"{trigger} was not allowed from {user._reach}")
    assert user._reach is not None
    return user._reach
