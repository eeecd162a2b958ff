"""Current-user and user-list rules (as the Atlas Device SDKs keep them)."""

from __future__ import annotations

import pytest

from appusers import Credentials, UserState
from appusers.errors import (
    InvalidArgumentError,
    UserAlreadyNamedError,
    UserNotFoundError,
    UserNotLoggedInError,
)

from ._helpers import email_user


async def test_login_makes_current_and_all_users_keeps_storage_order(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    assert app.current_user is bob
    assert list(app.all_users) == [ana.id, bob.id]
    app.switch_user(ana)
    assert app.current_user is ana
    assert list(app.all_users) == [ana.id, bob.id]


async def test_after_current_logs_out_first_logged_in_in_storage_order_is_current(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    cy = await email_user(app, server, "cy@example.com")
    await cy.log_out()
    assert app.current_user is ana  # not bob, the most recently used
    assert set(app.all_users) == {ana.id, bob.id, cy.id}
    assert app.all_users[cy.id].state is UserState.LOGGED_OUT


async def test_switch_user_preconditions(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    await ana.log_out()
    with pytest.raises(UserNotLoggedInError):
        app.switch_user(ana)
    assert app.current_user is bob
    await app.remove_user(ana)
    with pytest.raises(UserNotFoundError):
        app.switch_user(ana)
    with pytest.raises(InvalidArgumentError):
        app.switch_user("not a user")  # type: ignore[arg-type]


async def test_remove_user_that_is_not_current(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    await app.remove_user(ana)
    assert ana.state is UserState.REMOVED
    assert list(app.all_users) == [bob.id]
    assert app.current_user is bob
    with pytest.raises(UserNotFoundError, match="already been removed"):
        await app.remove_user(ana)
    # A removed user can log in again, as a new object.
    again = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
    assert again is not ana and again.id == ana.id


async def test_remove_logged_out_user_sends_nothing(app, server):
    ana = await email_user(app, server, "ana@example.com")
    await ana.log_out()
    before = server.stats["logout"]
    await app.remove_user(ana)
    assert server.stats["logout"] == before
    assert app.all_users == {}


async def test_delete_user(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    await app.delete_user(bob)
    assert bob.state is UserState.REMOVED
    assert app.current_user is ana
    with pytest.raises(Exception):  # noqa: B017 - the server no longer knows the identity
        await app.log_in(Credentials.email_password("bob@example.com", "s3cret-pass"))
    await ana.log_out()
    with pytest.raises(UserNotLoggedInError):
        await app.delete_user(ana)


async def test_anonymous_reuse_and_opt_out(app):
    first = await app.log_in(Credentials.anonymous())
    assert await app.log_in(Credentials.anonymous()) is first
    other = await app.log_in(Credentials.anonymous(reuse=False))
    assert other is not first and other.id != first.id


async def test_link_anonymous_to_email_keeps_id_and_survives_logout(app, server):
    anon = await app.log_in(Credentials.anonymous())
    await app.email_password_auth.register_user("lin@example.com", "s3cret-pass")
    mail = [m for m in server.read_outbox() if m["email"] == "lin@example.com"][-1]
    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
    await anon.link_credentials(Credentials.email_password("lin@example.com", "s3cret-pass"))
    assert {i.provider_type for i in anon.identities} == {"anon-user", "local-userpass"}
    await anon.log_out()
    assert anon.state is UserState.LOGGED_OUT  # no longer anonymous: not removed
    again = await app.log_in(Credentials.email_password("lin@example.com", "s3cret-pass"))
    assert again is anon
    with pytest.raises(UserAlreadyNamedError):
        await again.link_credentials(Credentials.anonymous())
