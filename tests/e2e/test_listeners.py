"""Listeners of zero or one parameter, and the app event of a link (issue 11 item 6)."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from appusers import (
    App,
    AppEvent,
    Credentials,
    CurrentUserChanged,
    CurrentUserLinked,
    IdentitiesLinked,
    LoggedOut,
    User,
    UserEvent,
)
from appusers.errors import AccountNameInUseError, InvalidPasswordError

from ._helpers import PASSWORD, email_user, register_confirmed


class Calls:
    """Listeners of every accepted shape, recording what they were called with."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def nothing(self) -> None:  # the Node SDK's shape
        self.log.append(("nothing", None))

    def event(self, event: Any) -> None:
        self.log.append(("event", event))

    def optional(self, event: Any = None) -> None:
        self.log.append(("optional", event))

    def star(self, *args: Any) -> None:
        self.log.append(("star", args))

    def keyword_default(self, *, verbose: bool = False) -> None:
        self.log.append(("keyword_default", verbose))

    def partial(self, tag: str, event: Any) -> None:
        self.log.append((tag, event))

    def shapes(self) -> list[Any]:
        return [self.nothing, self.event, self.optional, self.star, self.keyword_default,
                functools.partial(self.partial, "partial")]


def noted(calls: Calls) -> list[str]:
    return [name for name, _ in calls.log]


@pytest.mark.parametrize("target", ["app", "user"])
async def test_zero_and_one_parameter_listeners_each_get_every_event(app, server, target):
    ana = await email_user(app, server, "ana@example.com")
    subject: App | User = app if target == "app" else ana
    calls = Calls()
    for callback in calls.shapes():
        subject.add_listener(callback)
    lambda_calls: list[int] = []
    subject.add_listener(lambda: lambda_calls.append(1))

    await ana.log_out()

    expected_event = CurrentUserChanged(None) if target == "app" else LoggedOut
    events = [e for name, e in calls.log if name == "event"]
    assert events and (events[0] == expected_event if target == "app" else isinstance(events[0], LoggedOut))
    per_event = ["nothing", "event", "optional", "star", "keyword_default", "partial"]
    assert noted(calls) == per_event * len(events)  # every shape, every event, in order added
    for name, value in calls.log:
        if name in ("event", "optional", "partial"):
            assert isinstance(value, AppEvent if target == "app" else UserEvent)
        elif name == "star":
            assert len(value) == 1 and isinstance(value[0], AppEvent if target == "app" else UserEvent)
        elif name == "keyword_default":
            assert value is False  # called with nothing, not with the event as a keyword
    assert len(lambda_calls) == len(events)


async def test_a_zero_parameter_listener_can_be_removed_and_is_added_once(app, server):
    calls = Calls()
    app.add_listener(calls.nothing)
    app.add_listener(calls.nothing)  # the same callback twice: still one call per event
    await email_user(app, server, "ana@example.com")
    first = len(calls.log)
    assert first >= 1 and noted(calls) == ["nothing"] * first
    app.remove_listener(calls.nothing)
    await email_user(app, server, "bob@example.com")
    assert len(calls.log) == first


class TwoArguments:
    def __call__(self, event: Any, extra: Any) -> None:
        raise AssertionError("never called")


def two(event: Any, extra: Any) -> None:
    raise AssertionError("never called")


def keyword_only(*, event: Any) -> None:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        (two, r"two has the signature \(event: 'Any', extra: 'Any'\)"),
        (keyword_only, "keyword_only has the signature"),
        (TwoArguments(), "one argument .the event. or none"),
        (lambda a, b, c: None, "<lambda> has the signature"),
        (None, "must be callable, not NoneType"),
        ("print", "must be callable, not str"),
    ],
)
@pytest.mark.parametrize("target", ["app", "user"])
async def test_other_shapes_are_refused_when_added(app, server, target, callback, message):
    ana = await email_user(app, server, "ana@example.com")
    subject: App | User = app if target == "app" else ana
    with pytest.raises(TypeError, match=message):
        subject.add_listener(callback)
    await ana.log_out()  # events flow; the refused callback was never registered
    subject.remove_listener(callback)  # unknown callbacks are ignored, as before


async def test_linking_the_current_user_emits_an_app_event_after_the_user_event(app, server):
    anon = await app.log_in(Credentials.anonymous())
    await register_confirmed(app, server, "ana@example.com")
    order: list[object] = []
    anon.add_listener(order.append)
    app.add_listener(order.append)
    pinged: list[int] = []
    app.add_listener(lambda: pinged.append(1))

    await anon.link_credentials(Credentials.email_password("ana@example.com", PASSWORD))

    # The current user did not change (it already was anon): only the link is news to the app.
    assert order == [IdentitiesLinked(anon.id, anon.identities), CurrentUserLinked(anon.id, anon.identities)]
    assert [i.provider_type for i in order[-1].identities] == ["anon-user", "local-userpass"]  # type: ignore[attr-defined]
    assert pinged == [1]


async def test_linking_a_user_that_was_not_current_makes_it_current_then_reports_the_link(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    assert app.current_user is bob
    events: list[AppEvent] = []
    app.add_listener(events.append)
    await register_confirmed(app, server, "ana.work@example.com")

    await ana.link_credentials(Credentials.email_password("ana.work@example.com", PASSWORD))

    assert events == [CurrentUserChanged(ana.id), CurrentUserLinked(ana.id, ana.identities)]
    assert app.current_user is ana


async def test_a_failed_link_emits_no_app_event(app, server):
    anon = await app.log_in(Credentials.anonymous())
    ana = await email_user(app, server, "ana@example.com")
    app.switch_user(anon)
    events: list[AppEvent] = []
    app.add_listener(events.append)
    with pytest.raises(InvalidPasswordError):
        await anon.link_credentials(Credentials.email_password("ana@example.com", "wrong-password"))
    with pytest.raises(AccountNameInUseError):
        await anon.link_credentials(Credentials.email_password("ana@example.com", PASSWORD))
    assert events == [] and app.current_user is anon and ana.is_logged_in
