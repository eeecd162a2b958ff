"""Rx streams: replay, order, isolation of misbehaving subscribers, re-entrancy."""

from __future__ import annotations

import logging

from appusers import (
    AccessTokenRefreshed,
    Credentials,
    CurrentUserChanged,
    CustomDataRefreshed,
    LoggedOut,
    LogoutCause,
    UsersChanged,
    UserState,
)

from ._helpers import email_user


async def test_state_changes_replays_the_current_state(app):
    user = await app.log_in(Credentials.anonymous())
    seen: list[UserState] = []
    user.state_changes.subscribe(seen.append)
    assert seen == [UserState.LOGGED_IN]
    await user.log_out()
    assert seen == [UserState.LOGGED_IN, UserState.REMOVED]  # anonymous users are removed


async def test_a_raising_subscriber_neither_breaks_nor_undoes_a_transition(app, caplog):
    user = await app.log_in(Credentials.anonymous(reuse=False))
    after: list[object] = []

    def boom(_event: object) -> None:
        raise RuntimeError("subscriber bug")

    user.events.subscribe(boom)
    user.events.subscribe(after.append)
    user.state_changes.subscribe(lambda s: 1 / 0 if s is UserState.REMOVED else None)
    with caplog.at_level(logging.ERROR, logger="appusers.streams"):
        await user.log_out()
    assert user.state is UserState.REMOVED
    assert after == [LoggedOut(user.id, LogoutCause.USER_REQUEST, UserState.REMOVED)]
    assert "a subscriber raised" in caplog.text


async def test_a_subscriber_may_call_back_into_the_sdk(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    switched: list[str] = []

    def on_event(event: object) -> None:
        if isinstance(event, LoggedOut):
            # Re-entrant: read and change App state from inside the callback.
            app.switch_user(ana)
            switched.append(app.current_user.id)

    bob.events.subscribe(on_event)
    await bob.log_out()
    assert switched == [ana.id]
    assert app.current_user is ana


async def test_app_streams_report_current_user_and_user_list(app, server):
    currents: list[object] = []
    lists: list[tuple[str, ...]] = []
    events: list[object] = []
    app.current_user_changes.subscribe(lambda u: currents.append(None if u is None else u.id))
    app.users_changes.subscribe(lambda users: lists.append(tuple(u.id for u in users)))
    app.add_listener(events.append)

    ana = await email_user(app, server, "ana@example.com")
    anon = await app.log_in(Credentials.anonymous())
    app.switch_user(ana)
    await ana.log_out()

    assert currents == [None, ana.id, anon.id, ana.id, anon.id]
    assert lists[0] == () and lists[1] == (ana.id,) and lists[2] == (ana.id, anon.id)
    assert CurrentUserChanged(anon.id) in events
    assert any(isinstance(e, UsersChanged) for e in events)
    app.remove_all_listeners()


async def test_listeners_receive_what_changed(app, server):
    user = await app.log_in(Credentials.anonymous())
    got: list[object] = []
    user.add_listener(got.append)
    await user.functions.set_custom_data({"plan": "pro"})
    data = await user.refresh_custom_data()
    assert data["plan"] == "pro"
    assert isinstance(got[0], AccessTokenRefreshed)
    assert got[1] == CustomDataRefreshed(user.id, data)
    user.remove_listener(got.append)
    await user.refresh_access_token()
    assert len(got) == 2
