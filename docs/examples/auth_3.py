"""API key log-in: a server API key logs in a "server" user (user API keys log in their owner)."""

from appusers import App, Credentials
from appusers.server import DEMO_SERVER_API_KEY


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        # The demo settings of `appusers serve` have one server API key, DEMO_SERVER_API_KEY.
        user = await app.log_in(Credentials.api_key(DEMO_SERVER_API_KEY))
        assert user.profile.type == "server"
        assert [identity.provider_type for identity in user.identities] == ["api-key"]
