"""Anonymous log-in: a logged-in anonymous user is reused unless reuse=False."""

from appusers import App, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        assert user.is_anonymous() and app.current_user is user

        # Logging in anonymously again returns the same user while it is logged in...
        assert await app.log_in(Credentials.anonymous()) is user
        # ...unless you ask for a new one.
        other = await app.log_in(Credentials.anonymous(reuse=False))
        assert other is not user and other.is_anonymous()
