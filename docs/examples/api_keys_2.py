"""List, look up, disable, enable and delete a user's API keys."""

from appusers import App, Credentials
from appusers.errors import APIKeyNotFoundError, InvalidPasswordError


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))
        created = await user.api_keys.create("laptop")
        assert created.key is not None

        keys = await user.api_keys.fetch_all()
        assert [(k.id, k.name) for k in keys] == [(created.id, "laptop")]
        fetched = await user.api_keys.fetch(created.id)
        assert fetched.key is None  # listing never returns the secret

        await user.api_keys.disable(created.id)
        assert (await user.api_keys.fetch(created.id)).disabled
        try:
            await app.log_in(Credentials.api_key(created.key))
        except InvalidPasswordError:
            pass  # a disabled key cannot log in
        else:
            raise AssertionError("a disabled key logged in")

        await user.api_keys.enable(created.id)
        await user.api_keys.delete(created.id)
        try:
            await user.api_keys.fetch(created.id)
        except APIKeyNotFoundError:
            pass
        else:
            raise AssertionError("the key was not deleted")
