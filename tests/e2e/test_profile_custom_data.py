"""Custom user data, the profile, their refreshes and events, end to end.

The profile is filled from a custom JWT's claims through the custom-token
provider's ``metadata_fields`` (see ``_helpers._CONFIG``).
"""

from __future__ import annotations

import pytest

from appusers import (
    AccessTokenRefreshed,
    Credentials,
    CustomDataRefreshed,
    ProfileRefreshed,
    RetryPolicy,
    UserState,
)
from appusers.adapters import FileStorage
from appusers.errors import (
    HTTPStatusError,
    MaintenanceError,
    RefreshTokenRejectedError,
    ServiceError,
    UserNotFoundError,
    UserNotLoggedInError,
)

from ._helpers import Snapshot, custom_token, email_user, stored

FULL_CLAIMS = {
    "name": "Ana Lima",
    "email": "ana@example.com",
    "picture": "https://example.com/ana.png",
    "given_name": "Ana",
    "family_name": "Lima",
    "info": {"gender": "female", "birthday": "1990-04-01", "min_age": 18, "max_age": 65},
    "team": "blue",
}


def recorder(user):
    events = []
    user.events.subscribe(events.append)
    return events


async def test_profile_fields_come_from_the_custom_jwt(app, server, store_path, make_app):
    user = await app.log_in(Credentials.jwt(custom_token("ana-sub", **FULL_CLAIMS)))
    profile = user.profile
    assert (profile.name, profile.email, profile.picture_url) == (
        "Ana Lima", "ana@example.com", "https://example.com/ana.png",
    )
    assert (profile.first_name, profile.last_name, profile.gender, profile.birthday) == (
        "Ana", "Lima", "female", "1990-04-01",
    )
    assert (profile.min_age, profile.max_age) == ("18", "65")  # profile values are strings
    assert profile.data["team"] == "blue"  # the raw document keeps the non-standard fields
    assert profile.type == "normal"
    assert [i.provider_type for i in user.identities] == ["custom-token"]
    # Kept in storage and restored at the next start.
    assert stored(store_path)[user.id]["profile"]["name"] == "Ana Lima"
    restored = (await make_app(storage=FileStorage(store_path))).all_users[user.id]
    assert restored.profile == profile and restored.identities == user.identities


async def test_profile_of_a_user_without_metadata_is_empty_not_an_error(app):
    user = await app.log_in(Credentials.anonymous())
    profile = await user.refresh_profile()
    assert profile.name is None and profile.email is None and profile.min_age is None
    assert dict(profile.data) == {}


async def test_refresh_profile_picks_up_server_changes_and_emits_its_event(app, server, make_app, store_path):
    user = await app.log_in(Credentials.jwt(custom_token("ana-sub", name="Ana")))
    events = recorder(user)
    # Another device logs the same identity in with newer claims: the server's profile changes.
    other = await make_app()
    await other.log_in(Credentials.jwt(custom_token("ana-sub", name="Ana Maria", given_name="Ana")))
    assert user.profile.name == "Ana"
    profile = await user.refresh_profile()
    assert profile is user.profile and profile.name == "Ana Maria" and profile.first_name == "Ana"
    assert events == [ProfileRefreshed(user.id, profile, user.identities)]
    assert stored(store_path)[user.id]["profile"]["name"] == "Ana Maria"


async def test_refresh_profile_failures_change_nothing(app, server, store_path):
    app.retry = RetryPolicy.none()  # one failed request, not the retries (tests/core/test_connectivity.py)
    ana = await app.log_in(Credentials.jwt(custom_token("ana-sub", name="Ana")))
    events = recorder(ana)
    server.inject_fault("profile", 500, {"error": "This service is currently undergoing maintenance",
                                         "error_code": "MaintenanceInProgress"})
    before = Snapshot(server, store_path)
    with pytest.raises(MaintenanceError):
        await ana.refresh_profile()
    before.assert_unchanged(profile=1)
    server.inject_fault("profile", 502, None)
    with pytest.raises(HTTPStatusError):
        await ana.refresh_profile()
    before.assert_unchanged(profile=2)
    assert ana.profile.name == "Ana" and events == []
    await ana.log_out()
    before = Snapshot(server, store_path)
    with pytest.raises(UserNotLoggedInError):
        await ana.refresh_profile()
    before.assert_unchanged()
    assert [type(e).__name__ for e in events] == ["LoggedOut"]


async def test_custom_data_refresh_and_event(app, server, store_path, make_app):
    ana = await email_user(app, server, "ana@example.com")
    assert ana.custom_data == {}
    events = recorder(ana)
    await ana.call_function("set_custom_data", {"plan": "gold", "seats": 3})
    assert ana.custom_data == {}  # the access token still carries the old data
    data = await ana.refresh_custom_data()
    assert {k: v for k, v in data.items() if k != "_id"} == {"user_id": ana.id, "plan": "gold", "seats": 3}
    assert type(data["_id"]).__name__ == "ObjectId"  # EJSON-decoded, as the document stores it
    assert ana.custom_data == data
    assert events == [AccessTokenRefreshed(ana.id), CustomDataRefreshed(ana.id, data)]
    # Persisted: the next start reads the same custom data from the stored access token.
    assert stored(store_path)[ana.id]["access_token"] == ana.access_token
    restored = (await make_app(storage=FileStorage(store_path))).all_users[ana.id]
    assert restored.custom_data == data


async def test_custom_data_of_a_user_that_is_not_current(app, server):
    ana = await email_user(app, server, "ana@example.com")
    bob = await email_user(app, server, "bob@example.com")
    assert app.current_user is bob
    await ana.call_function("set_custom_data", {"owner": "ana"})
    assert (await ana.refresh_custom_data())["owner"] == "ana"
    assert await bob.refresh_custom_data() == {}
    assert app.current_user is bob


async def test_refresh_custom_data_failures_change_nothing(app, server, store_path, make_app):
    app.retry = RetryPolicy.none()  # one failed request, not the retries (tests/core/test_connectivity.py)
    ana = await email_user(app, server, "ana@example.com")
    await ana.call_function("set_custom_data", {"plan": "gold"})
    await ana.refresh_custom_data()
    events = recorder(ana)
    token = ana.access_token
    before = Snapshot(server, store_path)
    server.inject_fault("refresh", 503, None)
    with pytest.raises(HTTPStatusError):
        await ana.refresh_custom_data()
    before.assert_unchanged(refresh=1)
    assert ana.access_token == token and ana.custom_data["plan"] == "gold" and events == []
    # Users that cannot refresh are refused locally.
    other_app = await make_app()
    stranger = await other_app.log_in(Credentials.anonymous())
    await other_app.remove_user(stranger)
    before = Snapshot(server, store_path)
    with pytest.raises(UserNotFoundError):
        await stranger.refresh_custom_data()
    before.assert_unchanged()
    await ana.log_out()
    before = Snapshot(server, store_path)
    with pytest.raises(UserNotLoggedInError):
        await ana.refresh_custom_data()
    before.assert_unchanged()
    assert ana.custom_data == {}


async def test_refresh_custom_data_with_a_dead_session_logs_out(app, server, store_path):
    ana = await email_user(app, server, "ana@example.com")
    await server.revoke_sessions(ana.id)
    with pytest.raises(RefreshTokenRejectedError):
        await ana.refresh_custom_data()
    assert ana.state is UserState.LOGGED_OUT
    assert stored(store_path)[ana.id]["access_token"] is None


async def test_jwt_login_failures_change_nothing(start_server, make_app, tmp_path):
    server = await start_server(team_required=True)
    from appusers.adapters import FileStorage

    path = tmp_path / "jwt-client.json"
    app = await make_app(base_url=server.url, storage=FileStorage(path))
    await app.log_in(Credentials.jwt(custom_token("ana-sub", team="red")))
    before = Snapshot(server, path)
    with pytest.raises(ServiceError, match="required metadata field 'team' missing") as info:
        await app.log_in(Credentials.jwt(custom_token("bob-sub", name="Bob")))
    assert info.value.error_code == "AuthError"
    forged = custom_token("bob-sub", team="red")[:-4] + "AAAA"
    with pytest.raises(ServiceError, match="invalid token") as info:
        await app.log_in(Credentials.jwt(forged))
    assert info.value.error_code == "AuthError" and info.value.status == 401
    before.assert_unchanged(login=2)
    assert len(app.all_users) == 1
