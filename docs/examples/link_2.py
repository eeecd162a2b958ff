"""Linking an identity that already belongs to another user fails and changes nothing."""

from appusers import App, Credentials
from appusers.errors import AccountNameInUseError


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        await app.log_in(Credentials.function({"username": "bob"}))  # bob's identity has a user
        user = await app.log_in(Credentials.google(auth_code="demo-google:77:ana@example.com"))
        before = user.identities

        try:
            await user.link_credentials(Credentials.function({"username": "bob"}))
        except AccountNameInUseError as exc:
            assert exc.status == 409
        else:
            raise AssertionError("linked another user's identity")
        assert user.identities == before
