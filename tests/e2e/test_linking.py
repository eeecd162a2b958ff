"""``user.link_credentials`` end to end."""

from __future__ import annotations

import pytest

from appusers import Credentials, IdentitiesLinked, UserState
from appusers.errors import (
    AccountNameInUseError,
    InvalidArgumentError,
    InvalidPasswordError,
    UserAlreadyNamedError,
    UserNotFoundError,
    UserNotLoggedInError,
)

from ._helpers import PASSWORD, Snapshot, custom_token, email_user, register_confirmed, stored


def recorder(user):
    events = []
    user.events.subscribe(events.append)
    return events


def session_of(user):
    return (user.state, user.access_token, user.refresh_token, user.identities, user.profile)


async def test_anonymous_upgraded_to_email_keeps_id_data_and_survives_log_out(app, server, store_path):
    anon = await app.log_in(Credentials.anonymous())
    await anon.call_function("set_custom_data", {"cart": ["apple"]})
    await register_confirmed(app, server, "ana@example.com")
    events = recorder(anon)
    refresh_token = anon.refresh_token

    await anon.link_credentials(Credentials.email_password("ana@example.com", PASSWORD))

    assert anon.is_logged_in and not anon.is_anonymous()
    assert [i.provider_type for i in anon.identities] == ["anon-user", "local-userpass"]
    assert anon.refresh_token == refresh_token  # the session goes on; only the access token is new
    assert anon.profile.email == "ana@example.com"
    assert anon.custom_data["cart"] == ["apple"]  # the new access token carries the same user's data
    assert events == [IdentitiesLinked(anon.id, anon.identities)]
    assert stored(store_path)[anon.id]["identities"] == [[i.id, i.provider_type] for i in anon.identities]
    # The server agrees: one user, two identities.
    assert (await anon.call_function("whoami"))["identities"] == ["anon-user", "local-userpass"]

    await anon.log_out()
    assert anon.state is UserState.LOGGED_OUT  # not removed: it is no longer anonymous
    assert list(app.all_users) == [anon.id] and stored(store_path)[anon.id]["state"] == "LoggedOut"
    again = await app.log_in(Credentials.email_password("ana@example.com", PASSWORD))
    assert again is anon
    assert (await again.refresh_custom_data())["cart"] == ["apple"]
    # A new anonymous log-in is a new user: the linked one is no longer a candidate for reuse.
    fresh = await app.log_in(Credentials.anonymous())
    assert fresh is not anon and fresh.id != anon.id


async def test_linking_makes_the_linked_user_current(app, server):
    anon = await app.log_in(Credentials.anonymous())
    bob = await email_user(app, server, "bob@example.com")
    assert app.current_user is bob
    await anon.link_credentials(Credentials.jwt(custom_token("anon-upgrade", name="Ann")))
    assert app.current_user is anon  # core: linking switches to the linked user
    assert anon.profile.name == "Ann"
    assert bob.is_logged_in and [i.provider_type for i in bob.identities] == ["local-userpass"]


async def test_linking_an_identity_of_another_user_fails_and_changes_nothing(app, server, store_path):
    bob = await email_user(app, server, "bob@example.com")
    anon = await app.log_in(Credentials.anonymous())
    events = recorder(anon)
    bob_before, anon_before = session_of(bob), session_of(anon)
    before = Snapshot(server, store_path)

    with pytest.raises(AccountNameInUseError) as info:
        await anon.link_credentials(Credentials.email_password("bob@example.com", PASSWORD))
    assert info.value.status == 409

    before.assert_unchanged(link=1)
    assert session_of(anon) == anon_before and session_of(bob) == bob_before and events == []
    assert app.current_user is anon and anon.is_anonymous()
    # Server side: the identity still belongs to bob, the anonymous user still has one identity.
    assert [i.provider_type for i in (await anon.refresh_profile(), anon.identities)[1]] == ["anon-user"]
    await bob.log_out()
    assert await app.log_in(Credentials.email_password("bob@example.com", PASSWORD)) is bob
    # And the anonymous user still logs out as anonymous users do: removed.
    await anon.log_out()
    assert anon.state is UserState.REMOVED


async def test_linking_a_custom_jwt_of_another_user_fails_and_changes_nothing(app, server, store_path):
    owner = await app.log_in(Credentials.jwt(custom_token("taken-sub", name="Owner")))
    ana = await email_user(app, server, "ana@example.com")
    ana_before = session_of(ana)
    before = Snapshot(server, store_path)
    with pytest.raises(AccountNameInUseError):
        await ana.link_credentials(Credentials.jwt(custom_token("taken-sub", name="Thief")))
    before.assert_unchanged(link=1)
    assert session_of(ana) == ana_before
    assert (await owner.refresh_profile()).name == "Owner"  # the failed link merged no profile data


async def test_linking_with_wrong_credentials_fails_and_changes_nothing(app, server, store_path):
    await register_confirmed(app, server, "ana@example.com")
    anon = await app.log_in(Credentials.anonymous())
    anon_before = session_of(anon)
    before = Snapshot(server, store_path)
    with pytest.raises(InvalidPasswordError):
        await anon.link_credentials(Credentials.email_password("ana@example.com", "wrong-password"))
    before.assert_unchanged(link=1)
    assert session_of(anon) == anon_before


async def test_link_preconditions_are_checked_before_any_request(app, server, store_path, make_app):
    ana = await email_user(app, server, "ana@example.com")
    anon = await app.log_in(Credentials.anonymous())
    other_app = await make_app()
    stranger = await other_app.log_in(Credentials.anonymous())
    await other_app.remove_user(stranger)
    await ana.log_out()
    before = Snapshot(server, store_path)
    with pytest.raises(UserAlreadyNamedError, match="anonymous credentials"):
        await anon.link_credentials(Credentials.anonymous())
    with pytest.raises(UserNotLoggedInError):
        await ana.link_credentials(Credentials.jwt(custom_token("x")))
    with pytest.raises(UserNotFoundError):
        await stranger.link_credentials(Credentials.jwt(custom_token("x")))
    with pytest.raises(InvalidArgumentError):
        await anon.link_credentials("ana@example.com")  # type: ignore[arg-type]
    before.assert_unchanged()
    assert anon.is_anonymous() and app.current_user is anon
