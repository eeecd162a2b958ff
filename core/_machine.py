"""The user lifecycle, as data, run by ``transitions``.

One ``Machine`` serves every user of the process. Users are *not* registered
with ``add_model`` (an O(n) scan per call, and it would keep removed users
alive); instead each trigger is run for one user with ``Event.trigger(user)``,
which reads and writes only that user's ``state`` attribute. So a user costs
nothing here beyond its ``state`` field, and 100,000 users are as cheap as one.

Side effects of entering a state (dropping tokens) are machine callbacks;
publishing events is not: the caller publishes after the transition returns,
outside the machine, so a subscriber can neither break nor undo a transition.

``transitions`` builds and validates the machine; :func:`fire` then runs a table
compiled once from that machine's own events, conditions and callbacks.
``Event.trigger`` spends ~10-20 µs per call on generic work this lifecycle never
uses (event data, callback resolution, debug logging, queue checks), which was most
of a state change's latency to its subscribers; the table does the same steps in
the same order (exit callbacks, write ``_state``, enter callbacks) in ~1 µs.
Features the table does not model (prepare/before/after callbacks, machine-wide
callbacks, internal transitions) are refused when it is compiled, so a change to
:data:`MACHINE_CONFIG` cannot silently run differently.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, Protocol

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


class _Step(NamedTuple):
    """One transition of an event from one source state, as the machine would run it."""

    conditions: tuple[tuple[str, bool], ...]  # (method name on the user, the result it must give)
    exit: tuple[str, ...]  # the source state's on_exit callbacks
    dest: UserState
    enter: tuple[str, ...]  # the destination's on_enter callbacks


def _names(callbacks: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(c, str) for c in callbacks):
        raise TypeError(f"{where}: only callbacks named by a method of the user are compiled")
    return tuple(callbacks)


def _compile(machine: Machine) -> dict[tuple[str, UserState], tuple[_Step, ...]]:
    """``(trigger, source state) -> the transitions to try, in order`` from ``machine``."""
    unsupported = ("before_state_change", "after_state_change", "prepare_event", "finalize_event",
                   "on_exception", "on_final")
    for name in unsupported:
        if getattr(machine, name):
            raise TypeError(f"the compiled lifecycle does not run machine-wide {name} callbacks")
    if machine.send_event:
        raise TypeError("the compiled lifecycle calls conditions without event data")
    table: dict[tuple[str, UserState], tuple[_Step, ...]] = {}
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            steps = []
            for transition in transitions:
                where = f"{trigger} from {source}"
                if transition.prepare or transition.before or transition.after or not transition.dest:
                    raise TypeError(f"{where}: prepare/before/after callbacks and internal transitions "
                                    "are not compiled")
                exit_state, dest_state = machine.get_state(source), machine.get_state(transition.dest)
                if getattr(dest_state, "on_final", None):
                    raise TypeError(f"{where}: on_final callbacks are not compiled")
                conditions = []
                for condition in transition.conditions:
                    if not isinstance(condition.func, str):
                        raise TypeError(f"{where}: only conditions named by a user's method are compiled")
                    conditions.append((condition.func, bool(condition.target)))
                steps.append(_Step(tuple(conditions), _names(exit_state.on_exit, where),
                                   UserState(dest_state.value), _names(dest_state.on_enter, where)))
            table[(trigger, UserState(machine.get_state(source).value))] = tuple(steps)
    return table


_TABLE: Final = _compile(_MACHINE)


def _run(user: StatefulUser, name: str) -> Any:
    # As transitions resolves a name: a method is called, any other attribute is its value.
    value = getattr(user, name)
    return value() if callable(value) else value


def fire(user: StatefulUser, trigger: str) -> UserState:
    """Run ``trigger`` for ``user``; return the state it ended in."""
    state = user._state
    steps = _TABLE.get((trigger, state))
    if steps is None:
        _MACHINE.events[trigger]  # an unknown trigger is a KeyError, as with the machine itself
        raise InvalidTransition(f"\"Can't trigger event {trigger} from state {state.name}!\"")
    for conditions, exits, dest, enters in steps:
        passed = True
        for func, target in conditions:
            if _run(user, func) != target:
                passed = False
                break
        if passed:
            for callback in exits:
                _run(user, callback)
            user._state = dest
            for callback in enters:
                _run(user, callback)
            return dest
    raise InvalidTransition(f"{trigger} was not allowed from {state.value}")


def fire_with_machine(user: StatefulUser, trigger: str) -> UserState:
    """:func:`fire` through ``transitions`` itself (the reference the compiled table is tested against)."""
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
