"""Custom JWT claims become profile metadata when the custom-token provider maps them."""

import time
from pathlib import Path

import jwt

from appusers import App, Credentials
from appusers.server import LocalServer, load_config

SETTINGS = """
app_id = "metadata-demo"
[providers.custom-token]
key = "a-shared-secret-of-at-least-32-bytes!"
metadata_fields = [
    { path = "name", field_name = "name" },
    { path = "contact.email", field_name = "email", required = true },
]
"""


async def main(workdir: Path) -> None:
    (workdir / "server.toml").write_text(SETTINGS)
    async with LocalServer(config=load_config(workdir / "server.toml"), data_dir=workdir / "data") as server:
        now = int(time.time())
        claims = {"sub": "u-1", "iat": now, "exp": now + 600, "name": "Ana",
                  "contact": {"email": "ana@x.org"}}
        token = jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256")
        async with App(server.app_id, base_url=server.url) as app:
            user = await app.log_in(Credentials.jwt(token))
            assert user.profile.name == "Ana" and user.profile.email == "ana@x.org"
