"""Logging in with a new identity of any provider creates a user; remove_user only forgets it locally."""

from appusers import App, Credentials, UserState


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        # A custom-function identity the server has never seen: logging in creates its user.
        user = await app.log_in(Credentials.function({"username": "bob"}))
        assert [identity.provider_type for identity in user.identities] == ["custom-function"]

        # remove_user logs out and forgets the user on this device; the server keeps it.
        await app.remove_user(user)
        assert user.state is UserState.REMOVED and user.id not in app.all_users

        again = await app.log_in(Credentials.function({"username": "bob"}))
        assert again.id == user.id  # the same server-side user, as a new User object
