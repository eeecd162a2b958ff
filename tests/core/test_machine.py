"""The lifecycle machine: its table, and that it scales without per-user machines."""

from __future__ import annotations

import pytest

from appusers._machine import MACHINE_CONFIG, InvalidTransition, allowed, fire
from appusers._models import UserState

IN, OUT, GONE = UserState.LOGGED_IN, UserState.LOGGED_OUT, UserState.REMOVED


class Model:
    """A stand-in user: the machine writes ``_state``; ``state`` is read-only, as on ``User``."""

    __slots__ = ("__weakref__", "_state", "anonymous", "dropped")

    def __init__(self, state: UserState, anonymous: bool = False) -> None:
        self._state = state
        self.anonymous = anonymous
        self.dropped = 0

    @property
    def state(self) -> UserState:
        return self._state

    def is_anonymous(self) -> bool:
        return self.anonymous

    def _drop_tokens(self) -> None:
        self.dropped += 1


@pytest.mark.parametrize(
    ("start", "trigger", "anonymous", "end"),
    [
        (IN, "log_in", False, IN),
        (OUT, "log_in", False, IN),
        (IN, "log_out", False, OUT),
        (IN, "log_out", True, GONE),
        (IN, "reject_refresh", False, OUT),
        (IN, "reject_refresh", True, GONE),
        (IN, "remove", False, GONE),
        (OUT, "remove", False, GONE),
        (IN, "delete", False, GONE),
    ],
)
def test_transition_table(start, trigger, anonymous, end):
    model = Model(start, anonymous)
    assert fire(model, trigger) is end
    assert model.state is end
    assert model.dropped == (1 if end is not IN else 0)


@pytest.mark.parametrize("trigger", ["log_in", "log_out", "reject_refresh", "remove", "delete"])
def test_removed_is_terminal(trigger):
    model = Model(GONE)
    assert not allowed(GONE, trigger)
    with pytest.raises(InvalidTransition):
        fire(model, trigger)
    assert model.state is GONE


@pytest.mark.parametrize(("state", "trigger"), [(OUT, "log_out"), (OUT, "delete"), (OUT, "reject_refresh")])
def test_invalid_triggers_change_nothing(state, trigger):
    model = Model(state)
    with pytest.raises(InvalidTransition):
        fire(model, trigger)
    assert model.state is state and model.dropped == 0


def test_definition_is_data_and_removed_is_final():
    states = {s["name"]: s for s in MACHINE_CONFIG["states"]}
    assert set(states) == {IN, OUT, GONE}
    assert states[GONE].get("final") is True
    assert MACHINE_CONFIG["auto_transitions"] is False


def test_models_are_not_registered_so_removed_users_are_not_kept_alive():
    import gc
    import weakref

    from appusers._machine import _machines

    model = Model(IN)
    ref = weakref.ref(model)
    fire(model, "log_out")
    del model
    gc.collect()
    assert ref() is None
    assert _machines().lifecycle.models == []


class Recorder(Model):
    """A model that records the order of the machine's calls and the state each one saw."""

    __slots__ = ("calls",)

    def __init__(self, state: UserState, anonymous: bool = False) -> None:
        super().__init__(state, anonymous)
        self.calls: list[tuple[str, UserState]] = []

    def is_anonymous(self) -> bool:
        self.calls.append(("is_anonymous", self._state))
        return self.anonymous

    def _drop_tokens(self) -> None:
        self.calls.append(("_drop_tokens", self._state))
        super()._drop_tokens()


@pytest.mark.parametrize("start", [IN, OUT, GONE])
@pytest.mark.parametrize("trigger", ["log_in", "log_out", "reject_refresh", "remove", "delete"])
@pytest.mark.parametrize("anonymous", [False, True])
def test_the_compiled_table_runs_as_transitions_does(start, trigger, anonymous):
    from appusers._machine import fire_with_machine

    outcomes = []
    for run in (fire, fire_with_machine):
        model = Recorder(start, anonymous)
        try:
            result: object = run(model, trigger)
        except InvalidTransition as exc:
            result = ("InvalidTransition", str(exc))
        outcomes.append((result, model.state, model.dropped, model.calls))
    assert outcomes[0] == outcomes[1]


def test_an_unknown_trigger_is_a_key_error_as_with_transitions():
    with pytest.raises(KeyError):
        fire(Model(IN), "explode")


def test_a_config_the_table_cannot_run_is_refused_when_compiled():
    from transitions import Machine

    from appusers._machine import _compile

    config = {**MACHINE_CONFIG, "transitions": [
        {"trigger": "log_in", "source": OUT, "dest": IN, "before": "_drop_tokens"},
    ]}
    with pytest.raises(TypeError, match="before"):
        _compile(Machine(model=None, **config), UserState)
    with pytest.raises(TypeError, match="after_state_change"):
        _compile(Machine(model=None, **MACHINE_CONFIG, after_state_change="_drop_tokens"), UserState)


class Session(Recorder):
    """A model with the LoggedIn sub-machine's hooks and attribute, as on ``User``."""

    __slots__ = ("_reach",)

    def __init__(self, state: UserState, reach: object, anonymous: bool = False) -> None:
        super().__init__(state, anonymous)
        self._reach = reach

    def enter_session(self) -> None:
        self.calls.append(("enter_session", self._state))
        from appusers._models import ConnectivityState

        self._reach = ConnectivityState.ONLINE

    def leave_session(self) -> None:
        self.calls.append(("leave_session", self._state))
        self._reach = None


@pytest.mark.parametrize("start", [IN, OUT, GONE])
@pytest.mark.parametrize("trigger", ["log_in", "log_out", "reject_refresh", "remove", "delete"])
def test_the_compiled_table_runs_the_session_hooks_as_transitions_does(start, trigger):
    from appusers._machine import fire_with_machine
    from appusers._models import ConnectivityState

    outcomes = []
    for run in (fire, fire_with_machine):
        model = Session(start, ConnectivityState.OFFLINE if start is IN else None)
        try:
            result: object = run(model, trigger)
        except InvalidTransition as exc:
            result = ("InvalidTransition", str(exc))
        outcomes.append((result, model.state, model._reach, model.calls))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("reach", ["ONLINE", "REFRESHING", "OFFLINE", None])
@pytest.mark.parametrize("trigger", ["lose_server", "reach_server", "begin_refresh", "end_refresh"])
@pytest.mark.parametrize("state", [IN, OUT])
def test_the_compiled_connectivity_table_runs_as_transitions_does(reach, trigger, state):
    from appusers._machine import fire_connectivity, fire_connectivity_with_machine
    from appusers._models import ConnectivityState

    outcomes = []
    for run in (fire_connectivity, fire_connectivity_with_machine):
        model = Session(state, None if reach is None else ConnectivityState[reach])
        try:
            result: object = run(model, trigger)
        except InvalidTransition as exc:
            result = ("InvalidTransition", str(exc))
        outcomes.append((result, model.state, model._reach, model.calls))
    assert outcomes[0] == outcomes[1]
