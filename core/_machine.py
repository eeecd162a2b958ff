"""The user lifecycle, as data, run by ``transitions``.

One ``Machine`` serves every user of the process. Users are *not* registered
with ``add_model`` (an O(n) scan per call, and it would keep removed users
alive); instead each trigger is run for one user with ``Event.trigger(user)``,
which reads and writes only that user's ``state`` attribute. So a user costs
nothing here beyond its ``state`` field, and 100,000 users are as cheap as one.

Side effects of entering a state (dropping tokens) are machine callbacks;
publishing events is not: the caller publishes after the transition returns,
outside the machine, so a subscriber can neither break nor undo a transition.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from transitions import Machine, MachineError

from ._models import UserState

__all__ = ["MACHINE_CONFIG", "InvalidTransition", "StatefulUser", "fire"]

LOGGED_IN, LOGGED_OUT, REMOVED = UserState.LOGGED_IN, UserState.LOGGED_OUT, UserState.REMOVED

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


class StatefulUser(Protocol):
    _state: UserState

    def is_anonymous(self) -> bool: ...

    def _drop_tokens(self) -> None: ...


class InvalidTransition(Exception):
    """A trigger that the user's current state does not allow (a bug, not user input)."""


_MACHINE: Final = Machine(model=None, **MACHINE_CONFIG)


def fire(user: StatefulUser, trigger: str) -> UserState:
    """Run ``trigger`` for ``user``; return the state it ended in."""
    try:
        ok = _MACHINE.events[trigger].trigger(user)
    except MachineError as exc:
        raise InvalidTransition(str(exc)) from None
    if not ok:
        raise InvalidTransition(f"{trigger} was not allowed from {user._state.value}")
    return user._state


def allowed(state: UserState, trigger: str) -> bool:
    """Whether ``trigger`` may fire from ``state`` (conditions aside)."""
    return state.name in _MACHINE.events[trigger].transitions
