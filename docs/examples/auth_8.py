"""Logging out keeps an email/password user on the device (logged out); an anonymous user is removed."""

from appusers import App, Credentials, UserState


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        named = await app.log_in(Credentials.function({"username": "bob"}))
        anonymous = await app.log_in(Credentials.anonymous())

        await app.log_out()  # the current user: the anonymous one
        assert anonymous.state is UserState.REMOVED

        await named.log_out()
        assert named.state is UserState.LOGGED_OUT and named.access_token is None
        assert list(app.all_users) == [named.id] and app.current_user is None
