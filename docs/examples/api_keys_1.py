"""Create a user API key (its secret is shown once), then log in with it as the same user."""

from appusers import App, Credentials


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))

        key = await user.api_keys.create("ci-runner")
        assert key.name == "ci-runner" and not key.disabled
        assert key.key is not None  # the secret: store it now, it is never returned again

        # A script or server can now log in as this user with the key.
        async with App(app_id, base_url=base_url) as other_app:
            same = await other_app.log_in(Credentials.api_key(key.key))
            assert same.id == user.id
