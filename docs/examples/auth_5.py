"""Custom function log-in: the server's authentication function turns the payload into an identity."""

from appusers import App, Credentials
from appusers.errors import ServiceError


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        # The demo's `authenticate` function accepts {"username": ...} and uses it as the id.
        user = await app.log_in(Credentials.function({"username": "bob"}))
        assert user.identities[0].id == "bob"

        # When the function raises, the log-in fails and nothing changes on the device.
        try:
            await app.log_in(Credentials.function({"username": "eve", "reject": True}))
        except ServiceError as exc:
            assert exc.status == 401
        else:
            raise AssertionError("the function accepted eve")
        assert list(app.all_users) == [user.id]
