"""A user disabled on the server is logged out with the cause USER_DISABLED (real local server).

The server answers ``UserDisabled`` to every token it issued to a disabled user; the SDK
must tell that apart from an ended session so a UI can say "your account was disabled".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from appusers import Credentials, LoggedOut, LogoutCause, UserState
from appusers.adapters import FileStorage
from appusers.errors import RefreshTokenRejectedError, UserDisabledError

from ._helpers import email_user


async def test_a_call_after_disable_logs_out_with_user_disabled(make_app, server, tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    app = await make_app(storage=FileStorage(path))
    user = await email_user(app, server, "ana@example.com")
    access, refresh = user.access_token, user.refresh_token
    events: list[object] = []
    user.events.subscribe(events.append)

    await server.disable_user(user.id)
    with pytest.raises(UserDisabledError) as info:
        await user.functions.sum(1, 2)  # access token refused, then the refresh: UserDisabled

    assert info.value.status == 401 and info.value.error_code == "UserDisabled"
    assert "logged out" in str(info.value)
    assert user.state is UserState.LOGGED_OUT
    assert events == [LoggedOut(user.id, LogoutCause.USER_DISABLED, UserState.LOGGED_OUT)]
    text = path.read_text()
    assert access not in text and refresh not in text
    assert app.current_user is None

    # Logging in again says why it cannot work, and adds no session.
    with pytest.raises(UserDisabledError):
        await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
    assert user.state is UserState.LOGGED_OUT

    # Enabled again, the same user logs in.
    await server.enable_user(user.id)
    again = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
    assert again.id == user.id and again.is_logged_in


async def test_explicit_refresh_and_refresh_token_requests_say_user_disabled(make_app, server) -> None:
    app = await make_app()
    first = await email_user(app, server, "bo@example.com")
    second = await app.log_in(Credentials.anonymous())
    causes: list[LogoutCause] = []
    for user in (first, second):
        user.events.subscribe(lambda e: causes.append(e.cause) if isinstance(e, LoggedOut) else None)
        await server.disable_user(user.id)
    with pytest.raises(UserDisabledError):
        await first.refresh_access_token()
    # API keys authenticate with the refresh token: the same answer, the same cause.
    with pytest.raises(UserDisabledError):
        await second.api_keys.fetch_all()
    assert causes == [LogoutCause.USER_DISABLED, LogoutCause.USER_DISABLED]
    # An anonymous user cannot log in again, so it is removed rather than logged out.
    assert first.state is UserState.LOGGED_OUT and second.state is UserState.REMOVED


@pytest.mark.parametrize(
    ("body", "cause", "error"),
    [
        ({"error": "disabled", "error_code": "UserDisabled"}, LogoutCause.USER_DISABLED, UserDisabledError),
        ({"error": "invalid session", "error_code": "InvalidSession"}, LogoutCause.REFRESH_TOKEN_REJECTED,
         RefreshTokenRejectedError),
        # Anything that is not a clear UserDisabled stays "the session ended".
        (None, LogoutCause.REFRESH_TOKEN_REJECTED, RefreshTokenRejectedError),
        ({"error_code": ["UserDisabled"]}, LogoutCause.REFRESH_TOKEN_REJECTED, RefreshTokenRejectedError),
        ({"error_code": "userdisabled"}, LogoutCause.REFRESH_TOKEN_REJECTED, RefreshTokenRejectedError),
    ],
)
async def test_only_userdisabled_gives_the_cause(make_app, server, body, cause, error) -> None:
    app = await make_app()
    user = await app.log_in(Credentials.anonymous())
    events: list[object] = []
    user.events.subscribe(events.append)
    server.inject_fault("refresh", 401, body)
    with pytest.raises(error):
        await user.refresh_access_token()
    assert events[-1] == LoggedOut(user.id, cause, UserState.REMOVED)  # anonymous: removed
