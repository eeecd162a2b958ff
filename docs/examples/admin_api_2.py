"""A disabled user is logged out with the cause USER_DISABLED, not REFRESH_TOKEN_REJECTED."""

from appusers import App, Credentials, LoggedOut, LogoutCause, UserState
from appusers.errors import UserDisabledError
from appusers.server import LocalServer


async def main() -> None:
    async with LocalServer() as server:  # demo settings, temporary data directory
        async with App(server.app_id, base_url=server.url) as app:
            user = await app.log_in(Credentials.function({"username": "ana"}))
            events = []
            user.events.subscribe(events.append)

            await server.disable_user(user.id)  # as PUT .../users/{id}/disable does
            try:
                await user.functions.sum(1, 2)  # the next request finds out
            except UserDisabledError:
                pass
            else:
                raise AssertionError("a disabled user's call went through")
            assert user.state is UserState.LOGGED_OUT
            assert events[-1] == LoggedOut(user.id, LogoutCause.USER_DISABLED, UserState.LOGGED_OUT)

            # A UI can now say "your account was disabled" rather than "please log in again".
            try:
                await app.log_in(Credentials.function({"username": "ana"}))
            except UserDisabledError:
                pass
            else:
                raise AssertionError("a disabled user logged in")
