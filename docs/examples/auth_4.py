"""Custom JWT log-in: a token signed with the custom-token provider's key; its sub is the identity."""

import time

import jwt  # PyJWT, to sign a token as your own authentication server would

from appusers import App, Credentials
from appusers.server import DEMO_CUSTOM_TOKEN_SECRET


async def main(base_url: str, app_id: str) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": "user-1234", "aud": app_id, "iat": now, "exp": now + 600, "name": "Ana"},
        DEMO_CUSTOM_TOKEN_SECRET,  # [providers.custom-token] key of the demo settings (HS256)
        algorithm="HS256",
    )
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.jwt(token))
        assert user.identities[0].provider_type == "custom-token"
        assert user.identities[0].id == "user-1234"
