"""Embed the local server in tests or tools: LocalServer with the demo settings or a TOML file."""

from pathlib import Path

from appusers import App, Credentials
from appusers.server import LocalServer, load_config

SETTINGS = """
app_id = "my-test-app"

[providers.anon-user]

[providers.local-userpass]
auto_confirm = true     # registered accounts can log in at once

[security]
scrypt_n = 1024         # cheap password hashing, for tests only
"""


async def main(workdir: Path) -> None:
    (workdir / "server.toml").write_text(SETTINGS)
    config = load_config(workdir / "server.toml")
    # port=0 picks a free port; data_dir=None would use a temporary directory.
    async with LocalServer(config=config, data_dir=workdir / "data", port=0) as server:
        assert server.app_id == "my-test-app" and server.url.startswith("http://127.0.0.1:")
        async with App(server.app_id, base_url=server.url) as app:
            await app.email_password_auth.register_user("ana@example.com", "s3cret-pass")
            user = await app.log_in(Credentials.email_password("ana@example.com", "s3cret-pass"))
            assert user.is_logged_in
        assert server.read_outbox() == []  # auto-confirmed: no email was sent
        assert server.stats["login"] == 1
