"""user.events carries typed events: what happened and why, e.g. the cause of a log-out."""

from appusers import AccessTokenRefreshed, App, Credentials, LoggedIn, LoggedOut, LogoutCause, UserState


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        events = []
        user.events.subscribe(events.append)  # no replay: only what happens from now on

        await user.refresh_access_token()
        await user.log_out()  # an anonymous user is removed by logging out

        assert events == [
            AccessTokenRefreshed(user.id),
            LoggedOut(user.id, LogoutCause.USER_REQUEST, UserState.REMOVED),
        ]
        assert not any(isinstance(event, LoggedIn) for event in events)
