"""Several users on one App, end to end (the rules core-based SDKs follow).

tests/core/test_multiuser.py covers the basic rules; this module adds what
only the full stack shows: the server side of remove/delete, persistence of
order and current user across restarts, failures that must change nothing,
and operations on users that are not the current one.
"""

from __future__ import annotations

import pytest

from appusers import App, Credentials, CurrentUserChanged, RetryPolicy, UserState
from appusers.adapters import FileStorage
from appusers.errors import (
    HTTPStatusError,
    InvalidArgumentError,
    InvalidPasswordError,
    MaintenanceError,
    UserNotFoundError,
    UserNotLoggedInError,
)

from ._helpers import PASSWORD, Snapshot, email_user, session_alive, stored


async def restart(make_app, store_path) -> App:
    """A new App (a new process, as far as the client knows) on the same store file."""
    return await make_app(storage=FileStorage(store_path))


async def test_order_and_current_user_survive_a_restart(app, server, make_app, store_path):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    cy = await email_user(app, server, "cy@example.com")
    await bob.log_out()
    app.switch_user(ana)
    await app.aclose()  # the switch must be on disk even if the App closes at once

    again = await restart(make_app, store_path)
    assert list(again.all_users) == [ana.id, bob.id, cy.id]
    assert again.all_users[bob.id].state is UserState.LOGGED_OUT
    assert again.current_user is again.all_users[ana.id]


async def test_all_users_keeps_positions_on_log_in_again_and_appends_after_removal(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    cy = await email_user(app, server, "cy@example.com")
    await ana.log_out()
    assert await app.log_in(Credentials.email_password("ana@example.com", PASSWORD)) is ana
    assert list(app.all_users) == [ana.id, bob.id, cy.id]  # same object, same place
    await app.remove_user(bob)
    assert list(app.all_users) == [ana.id, cy.id]
    bob_again = await app.log_in(Credentials.email_password("bob@example.com", PASSWORD))
    assert bob_again is not bob and list(app.all_users) == [ana.id, cy.id, bob.id]


async def test_current_user_after_the_current_user_is_removed_or_deleted(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    cy = await email_user(app, server, "cy@example.com")
    dee = await email_user(app, server, "dee@example.com")
    app.switch_user(bob)
    app.switch_user(dee)  # the most recently used before dee is bob...
    events = []
    app.events.subscribe(events.append)
    await app.remove_user(dee)
    assert app.current_user is ana  # ...but the rule is "first logged in, in storage order"
    assert stored(store_path)["index"]["current"] == ana.id
    await app.delete_user(ana)
    assert app.current_user is bob
    assert stored(store_path)["index"]["current"] == bob.id
    await bob.log_out()
    await cy.log_out()
    assert app.current_user is None
    assert stored(store_path)["index"]["current"] is None
    assert list(app.all_users) == [bob.id, cy.id]
    changes = [e.user_id for e in events if isinstance(e, CurrentUserChanged)]
    assert changes == [ana.id, bob.id, cy.id, None]


async def test_switch_user_checks_the_app_and_emits(app, server, make_app, store_path):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    other = await make_app()
    stranger = await other.log_in(Credentials.anonymous())
    before = Snapshot(server, store_path)
    with pytest.raises(UserNotFoundError, match="User does not exist"):
        app.switch_user(stranger)
    with pytest.raises(InvalidArgumentError):
        app.switch_user(None)  # type: ignore[arg-type]
    before.assert_unchanged()
    assert app.current_user is bob and other.current_user is stranger

    events = []
    app.events.subscribe(events.append)
    app.switch_user(ana)
    app.switch_user(ana)
    assert events == [CurrentUserChanged(ana.id)]  # one change, one event
    assert app.current_user is ana and bob.is_logged_in


async def test_remove_a_logged_in_user_that_is_not_current(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    refresh = ana.refresh_token
    assert refresh is not None and await session_alive(server, refresh)
    events = []
    ana.events.subscribe(events.append)
    before = Snapshot(server, store_path)
    await app.remove_user(ana)
    assert before.requests() == {"logout": 1}
    assert not await session_alive(server, refresh)  # the server forgot the session too
    assert ana.state is UserState.REMOVED and ana.access_token is None
    assert [type(e).__name__ for e in events] == ["LoggedOut"]
    assert app.current_user is bob and list(app.all_users) == [bob.id]
    assert ana.id not in stored(store_path)
    # The server still knows the user: only this device forgot it.
    assert (await app.log_in(Credentials.email_password("ana@example.com", PASSWORD))).id == ana.id


async def test_remove_user_stands_locally_when_the_server_cannot_be_told(app, server, store_path):
    app.retry = RetryPolicy.none()  # one failed request, not the retries (tests/core/test_connectivity.py)
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    refresh = ana.refresh_token
    assert refresh is not None
    server.inject_fault("logout", 503, None)
    with pytest.raises(HTTPStatusError) as info:
        await app.remove_user(ana)  # core: the request's error is returned...
    assert info.value.status == 503
    assert ana.state is UserState.REMOVED and ana.id not in stored(store_path)  # ...the removal stands
    assert app.current_user is bob and list(app.all_users) == [bob.id]
    assert await session_alive(server, refresh)  # the server was never told


async def test_remove_user_bad_input_changes_nothing(app, server, store_path, make_app):
    ana = await email_user(app, server, "ana@example.com")
    other = await make_app()
    stranger = await other.log_in(Credentials.anonymous())
    before = Snapshot(server, store_path)
    with pytest.raises(UserNotFoundError, match="No user has been found"):
        await app.remove_user(stranger)
    with pytest.raises(InvalidArgumentError):
        await app.remove_user(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        await app.remove_user(ana.id)  # type: ignore[arg-type]
    before.assert_unchanged()
    assert stranger.is_logged_in and ana.is_logged_in and app.current_user is ana


async def test_log_out_of_users_that_are_not_current(app, server, store_path):
    anon = await app.log_in(Credentials.anonymous())
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    await app.log_out(ana)
    assert ana.state is UserState.LOGGED_OUT and app.current_user is bob
    await app.log_out(anon)
    assert anon.state is UserState.REMOVED and app.current_user is bob
    assert list(app.all_users) == [ana.id, bob.id]
    # Logging out a logged-out or removed user succeeds and sends nothing (core).
    before = Snapshot(server, store_path)
    await app.log_out(ana)
    await ana.log_out()
    await app.log_out(anon)
    await anon.log_out()
    before.assert_unchanged()


async def test_delete_a_user_that_is_not_current(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    key = await ana.api_keys.create("ci")
    bob = await email_user(app, server, "bob@example.com")
    before = Snapshot(server, store_path)
    await app.delete_user(ana)
    assert before.requests() == {"delete": 1}  # no session request: the session died with the user
    assert ana.state is UserState.REMOVED
    assert app.current_user is bob and list(app.all_users) == [bob.id]
    assert ana.id not in stored(store_path)
    assert stored(store_path)["index"]["order"] == [bob.id]
    # Gone on the server: its identity, its keys.
    with pytest.raises(InvalidPasswordError):
        await app.log_in(Credentials.email_password("ana@example.com", PASSWORD))
    assert key.key is not None
    with pytest.raises(InvalidPasswordError):
        await app.log_in(Credentials.api_key(key.key))
    assert bob.is_logged_in and (await bob.call_function("whoami"))["id"] == bob.id


async def test_delete_user_with_a_stale_access_token_refreshes_once_and_deletes(app, server):
    ana = await email_user(app, server, "ana@example.com")
    await server.revoke_access_tokens(ana.id)
    before = Snapshot(server)
    await app.delete_user(ana)
    assert before.requests() == {"delete": 2, "refresh": 1}
    assert ana.state is UserState.REMOVED


async def test_delete_user_failures_change_nothing(app, server, store_path, make_app):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    ana_tokens = (ana.access_token, ana.refresh_token)
    server.inject_fault("delete", 500, {"error": "This service is currently undergoing maintenance",
                                        "error_code": "MaintenanceInProgress"})
    before = Snapshot(server, store_path)
    with pytest.raises(MaintenanceError):
        await app.delete_user(ana)
    before.assert_unchanged(delete=1)
    assert ana.is_logged_in and (ana.access_token, ana.refresh_token) == ana_tokens
    assert list(app.all_users) == [ana.id, bob.id] and app.current_user is bob

    other = await make_app()
    stranger = await other.log_in(Credentials.anonymous())
    await app.remove_user(bob)
    await ana.log_out()
    before = Snapshot(server, store_path)
    with pytest.raises(UserNotLoggedInError, match="must be logged in to be deleted"):
        await app.delete_user(ana)
    with pytest.raises(UserNotFoundError):
        await app.delete_user(bob)  # removed
    with pytest.raises(UserNotFoundError):
        await app.delete_user(stranger)  # another App's
    with pytest.raises(InvalidArgumentError):
        await app.delete_user(None)  # type: ignore[arg-type]
    before.assert_unchanged()
    assert stranger.is_logged_in
    assert await app.log_in(Credentials.email_password("ana@example.com", PASSWORD)) is ana


async def test_each_user_acts_with_its_own_tokens(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    anon = await app.log_in(Credentials.anonymous(reuse=False))
    assert app.current_user is anon
    for user in (ana, bob, anon):
        assert (await user.call_function("whoami"))["id"] == user.id
        assert (await user.refresh_profile()) == user.profile
    assert ana.profile.email == "ana@example.com" and bob.profile.email == "bob@example.com"
    assert app.current_user is anon  # none of that changed the current user
