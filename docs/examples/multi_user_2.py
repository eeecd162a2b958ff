"""A logged-out user cannot be switched to; log it in again with its credentials."""

from appusers import App, Credentials
from appusers.errors import UserNotLoggedInError


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        ana = await app.log_in(Credentials.function({"username": "ana"}))
        await app.log_in(Credentials.function({"username": "bob"}))
        await ana.log_out()

        try:
            app.switch_user(ana)
        except UserNotLoggedInError:
            pass
        else:
            raise AssertionError("switched to a logged-out user")

        again = await app.log_in(Credentials.function({"username": "ana"}))
        assert again is ana and app.current_user is ana  # one User object per user id
