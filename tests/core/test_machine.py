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

    from appusers._machine import _MACHINE

    model = Model(IN)
    ref = weakref.ref(model)
    fire(model, "log_out")
    del model
    gc.collect()
    assert ref() is None
    assert _MACHINE.models == []
