"""Server test hooks: revoke a user's sessions and watch the client log the user out."""

from appusers import App, Credentials, LoggedOut, LogoutCause, UserState
from appusers.errors import RefreshTokenRejectedError
from appusers.server import LocalServer


async def main() -> None:
    async with LocalServer() as server:  # demo settings, temporary data directory
        async with App(server.app_id, base_url=server.url) as app:
            user = await app.log_in(Credentials.function({"username": "ana"}))
            events = []
            user.events.subscribe(events.append)

            await server.revoke_sessions(user.id)  # as if an admin ended every session
            try:
                await user.refresh_access_token()
            except RefreshTokenRejectedError:
                pass
            else:
                raise AssertionError("a revoked session refreshed")
            assert user.state is UserState.LOGGED_OUT
            assert events[-1] == LoggedOut(user.id, LogoutCause.REFRESH_TOKEN_REJECTED, UserState.LOGGED_OUT)
