"""``user.api_keys`` end to end, and logging in with user and server API keys."""

from __future__ import annotations

import pytest

from appusers import ApiKey, Credentials, UserState
from appusers.errors import (
    APIKeyNotFoundError,
    InvalidArgumentError,
    InvalidPasswordError,
    RefreshTokenRejectedError,
    ServiceError,
    UserNotLoggedInError,
)

from ._helpers import SERVER_KEY, Snapshot, email_user, stored

UNKNOWN_ID = "65a1f2d0e4b0a1b2c3d4e600"


async def test_create_fetch_list_disable_enable_delete(app, server):
    ana = await email_user(app, server, "ana@example.com")
    created = await ana.api_keys.create("ci-runner")
    assert isinstance(created, ApiKey) and created.name == "ci-runner" and not created.disabled
    assert created.key and len(created.id) == 24
    assert created.key not in repr(created)

    fetched = await ana.api_keys.fetch(created.id)
    assert fetched == ApiKey(created.id, "ci-runner", False, None)  # the secret is shown once only
    other = await ana.api_keys.create("laptop")
    listed = {k.id: k.name for k in await ana.api_keys.fetch_all()}
    assert listed == {created.id: "ci-runner", other.id: "laptop"}
    assert all(k.key is None for k in await ana.api_keys.fetch_all())

    await ana.api_keys.disable(created.id)
    assert (await ana.api_keys.fetch(created.id)).disabled
    await ana.api_keys.enable(created.id)
    assert not (await ana.api_keys.fetch(created.id)).disabled

    await ana.api_keys.delete(created.id)
    with pytest.raises(APIKeyNotFoundError, match="API key not found"):
        await ana.api_keys.fetch(created.id)
    assert [k.id for k in await ana.api_keys.fetch_all()] == [other.id]


async def test_log_in_with_a_user_api_key_is_its_owner(app, server):
    ana = await email_user(app, server, "ana@example.com")
    key = await ana.api_keys.create("ci")
    assert key.key is not None
    await ana.log_out()
    user = await app.log_in(Credentials.api_key(key.key))
    assert user is ana and ana.is_logged_in and app.current_user is ana
    assert {i.provider_type for i in ana.identities} == {"local-userpass", "api-key"}
    assert (await ana.call_function("whoami"))["id"] == ana.id

    # A disabled key no longer logs in; enabled again, it does.
    await ana.api_keys.disable(key.id)
    await ana.log_out()
    with pytest.raises(InvalidPasswordError):
        await app.log_in(Credentials.api_key(key.key))
    assert ana.state is UserState.LOGGED_OUT
    again = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
    await again.api_keys.enable(key.id)
    await again.api_keys.delete(key.id)
    await again.log_out()
    with pytest.raises(InvalidPasswordError):
        await app.log_in(Credentials.api_key(key.key))


async def test_log_in_with_a_server_api_key(app, server):
    user = await app.log_in(Credentials.api_key(SERVER_KEY))
    assert user.profile.type == "server"
    assert user.profile.name == "ops"
    assert [i.provider_type for i in user.identities] == ["api-key"]
    assert (await user.call_function("whoami"))["type"] == "server"
    # The same server key is the same user every time.
    await user.log_out()
    assert await app.log_in(Credentials.api_key(SERVER_KEY)) is user


async def test_a_wrong_api_key_fails_and_changes_nothing(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    await ana.api_keys.create("ci")
    before = Snapshot(server, store_path)
    with pytest.raises(InvalidPasswordError):
        await app.log_in(Credentials.api_key("not-a-key"))
    with pytest.raises(InvalidArgumentError):
        Credentials.api_key("")
    before.assert_unchanged(login=1)
    assert app.current_user is ana and list(app.all_users) == [ana.id]


async def test_bad_key_ids_and_names_fail_and_change_nothing(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    key = await ana.api_keys.create("ci")
    before = Snapshot(server, store_path)
    # Refused locally: not a string, empty, not a 24-digit hex ObjectId.
    for bad in [None, "", "   ", "zz" * 12, key.id + "0", "../" + key.id[3:]]:
        for call in (ana.api_keys.fetch, ana.api_keys.enable, ana.api_keys.disable, ana.api_keys.delete):
            with pytest.raises(InvalidArgumentError):
                await call(bad)
    for bad_name in [None, "", "  "]:
        with pytest.raises(InvalidArgumentError):
            await ana.api_keys.create(bad_name)
    before.assert_unchanged()
    # Refused by the server: an id nobody owns.
    for call in (ana.api_keys.fetch, ana.api_keys.enable, ana.api_keys.disable, ana.api_keys.delete):
        with pytest.raises(APIKeyNotFoundError):
            await call(UNKNOWN_ID)
    before.assert_unchanged(api_keys=4)
    assert ana.is_logged_in


async def test_a_duplicate_key_name_fails_and_changes_nothing(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    await ana.api_keys.create("ci")
    before = Snapshot(server, store_path)
    with pytest.raises(ServiceError, match="already exists") as info:
        await ana.api_keys.create("ci")
    assert info.value.error_code == "APIKeyAlreadyExists" and info.value.status == 409
    before.assert_unchanged(api_keys=1)
    assert [k.name for k in await ana.api_keys.fetch_all()] == ["ci"]


async def test_keys_of_another_user_are_not_found_and_unchanged(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    key = await ana.api_keys.create("ci")
    assert app.current_user is bob  # ana is not the current user: her keys still use her tokens
    before = Snapshot(server, store_path)
    for call in (bob.api_keys.fetch, bob.api_keys.enable, bob.api_keys.disable, bob.api_keys.delete):
        with pytest.raises(APIKeyNotFoundError):
            await call(key.id)
    assert await bob.api_keys.fetch_all() == []
    before.assert_unchanged(api_keys=5)
    assert await ana.api_keys.fetch(key.id) == ApiKey(key.id, "ci", False)
    assert key.key is not None
    await ana.log_out()
    assert await app.log_in(Credentials.api_key(key.key)) is ana


async def test_api_keys_of_a_logged_out_user_fail_locally(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    key = await ana.api_keys.create("ci")
    await ana.log_out()
    before = Snapshot(server, store_path)
    with pytest.raises(UserNotLoggedInError):
        await ana.api_keys.create("other")
    with pytest.raises(UserNotLoggedInError):
        await ana.api_keys.fetch_all()
    with pytest.raises(UserNotLoggedInError):
        await ana.api_keys.delete(key.id)
    before.assert_unchanged()


async def test_api_key_call_with_a_revoked_session_logs_the_user_out(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    await server.revoke_sessions(ana.id)
    with pytest.raises(RefreshTokenRejectedError):
        await ana.api_keys.fetch_all()
    assert ana.state is UserState.LOGGED_OUT and ana.refresh_token is None
    record = stored(store_path)[ana.id]
    assert record["state"] == "LoggedOut"
    assert record["refresh_token"] is None and record["access_token"] is None
