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

``transitions`` builds and validates both machines, at the first state change rather than
at ``import appusers`` (importing and building them was about a tenth of that import); :func:`fire` and
:func:`fire_connectivity` then run tables compiled once from those machines' own events,
conditions and callbacks. ``Event.trigger`` spends 10-20 µs per call on generic work
these machines never use (event data, callback resolution, debug logging, queue checks),
which was most of a state change's latency to its subscribers; a table does the same
steps in the same order (exit callbacks, write the model attribute, enter callbacks) in
about 1 µs. Features a table does not model (prepare/before/after callbacks,
machine-wide callbacks, internal transitions) are refused when it is compiled, so a
change to a config cannot silently run differently; the tests run every trigger from
every state through both the table and ``transitions`` and compare.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from ._models import ConnectivityState, UserState

if TYPE_CHECKING:
    from transitions import Machine

__all__ = [
    "CONNECTIVITY_CONFIG",
    "MACHINE_CONFIG",
    "InvalidTransition",
    "StatefulUser",
    "allowed",
    "build_machines",
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


class _Step(NamedTuple):
    """One transition of an event from one source state, as the machine would run it."""

    conditions: tuple[tuple[str, bool], ...]  # (a method name on the model, the result it must give)
    exit: tuple[str, ...]  # the source state's on_exit callbacks
    dest: Any  # the destination state (the machine's enum)
    enter: tuple[str, ...]  # the destination's on_enter callbacks


_Table = dict[tuple[str, enum.Enum], tuple[_Step, ...]]


def _names(callbacks: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(c, str) for c in callbacks):
        raise TypeError(f"{where}: only callbacks named by a method of the model are compiled")
    return tuple(callbacks)


def _compile(machine: Machine, states: type[enum.Enum]) -> _Table:
    """``(trigger, source state) -> the transitions to try, in order`` from ``machine``."""
    unsupported = ("before_state_change", "after_state_change", "prepare_event", "finalize_event",
                   "on_exception", "on_final")
    for name in unsupported:
        if getattr(machine, name):
            raise TypeError(f"the compiled lifecycle does not run machine-wide {name} callbacks")
    if machine.send_event:
        raise TypeError("the compiled lifecycle calls conditions without event data")
    table: _Table = {}
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
                        raise TypeError(f"{where}: only conditions named by a model's method are compiled")
                    conditions.append((condition.func, bool(condition.target)))
                steps.append(_Step(tuple(conditions), _names(exit_state.on_exit, where),
                                   states(dest_state.value), _names(dest_state.on_enter, where)))
            table[(trigger, states(machine.get_state(source).value))] = tuple(steps)
    return table


class _Machines(NamedTuple):
    lifecycle: Machine
    table: _Table
    connectivity: Machine
    connectivity_table: _Table


_built: _Machines | None = None


def _machines() -> _Machines:
    """Both machines and their tables, built on first use. Two threads racing here build the
    same machines twice and keep one: they hold no model, so either serves."""
    global _built
    if _built is None:
        from transitions import Machine

        lifecycle = Machine(model=None, **MACHINE_CONFIG)
        connectivity = Machine(model=None, **CONNECTIVITY_CONFIG)
        _built = _Machines(lifecycle, _compile(lifecycle, UserState),
                           connectivity, _compile(connectivity, ConnectivityState))
    return _built


def build_machines() -> None:
    """Build both machines now (``App()`` does), so that a broken ``transitions`` install
    fails where an App is made, not at a first log-in the server has already accepted."""
    _machines()



def _call(model: Any, name: str) -> Any:
    # As transitions resolves a name: a method is called, any other attribute is its value.
    value = getattr(model, name)
    return value() if callable(value) else value


def _run(table: _Table, machine: Machine, model: Any, attribute: str, trigger: str) -> bool:
    """Run ``trigger`` as ``machine`` would: False when no transition's conditions hold."""
    state = getattr(model, attribute)
    steps = table.get((trigger, state))
    if steps is None:
        machine.events[trigger]  # an unknown trigger is a KeyError, as with the machine itself
        raise InvalidTransition(f"\"Can't trigger event {trigger} from state {state.name}!\"")
    for conditions, exits, dest, enters in steps:
        passed = True
        for func, target in conditions:
            if _call(model, func) != target:
                passed = False
                break
        if passed:
            for callback in exits:
                _call(model, callback)
            setattr(model, attribute, dest)
            for callback in enters:
                _call(model, callback)
            return True
    return False


def fire(user: StatefulUser, trigger: str) -> UserState:
    """Run ``trigger`` for ``user``; return the state it ended in."""
    before = user._state
    built = _built or _machines()
    if not _run(built.table, built.lifecycle, user, "_state", trigger):
        raise InvalidTransition(f"{trigger} was not allowed from {user._state.value}")
    return _after_fire(user, before)


def fire_with_machine(user: StatefulUser, trigger: str) -> UserState:
    """:func:`fire` through ``transitions`` itself (the reference the table is tested against)."""
    from transitions import MachineError

    before = user._state
    try:
        ok = _machines().lifecycle.events[trigger].trigger(user)
    except MachineError as exc:
        raise InvalidTransition(str(exc)) from None
    if not ok:
        raise InvalidTransition(f"{trigger} was not allowed from {user._state.value}")
    return _after_fire(user, before)


def _after_fire(user: StatefulUser, before: UserState) -> UserState:
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
    return state.name in _machines().lifecycle.events[trigger].transitions


def fire_connectivity(user: StatefulUser, trigger: str) -> ConnectivityState:
    """Run a connectivity ``trigger`` for a logged-in ``user``; return its new sub-state."""
    if user._state is not LOGGED_IN or user._reach is None:
        raise InvalidTransition(f"{trigger}: connectivity is a sub-state of LoggedIn only")
    built = _built or _machines()
    if not _run(built.connectivity_table, built.connectivity, user, "_reach", trigger):
        raise InvalidTransition(f"{trigger} was not allowed from {user._reach}")
    assert user._reach is not None
    return user._reach


def fire_connectivity_with_machine(user: StatefulUser, trigger: str) -> ConnectivityState:
    """:func:`fire_connectivity` through ``transitions`` itself (the tests' reference)."""
    if user._state is not LOGGED_IN or user._reach is None:
        raise InvalidTransition(f"{trigger}: connectivity is a sub-state of LoggedIn only")
    from transitions import MachineError

    try:
        ok = _machines().connectivity.events[trigger].trigger(user)
    except MachineError as exc:
        raise InvalidTransition(str(exc)) from None
    if not ok:
        raise InvalidTransition(f"{trigger} was not allowed from {user._reach}")
    assert user._reach is not None
    return user._reach
