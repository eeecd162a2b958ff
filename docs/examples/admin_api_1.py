"""The Admin API over HTTP: log in with a key pair, then every user-management route."""

from pathlib import Path

import aiohttp

from appusers import App, Credentials
from appusers.server import LocalServer, load_config

SETTINGS = """
[admin]
public_key = "ab12cd34"
private_key = "6f1d2c3b-4a59-4e8f-9d7c-1b2a3c4d5e6f"   # kept as its sha256 only

[providers.anon-user]

[providers.local-userpass]

[security]
scrypt_n = 1024         # cheap password hashing, for tests only
"""


async def main(workdir: Path) -> None:
    (workdir / "server.toml").write_text(SETTINGS)
    config = load_config(workdir / "server.toml")
    server = LocalServer(config=config, data_dir=workdir / "data")
    async with server, aiohttp.ClientSession() as http:
        admin = f"{server.url}/api/admin/v3.0"

        async def call(method: str, path: str, token: str, body: object = None) -> tuple[int, object]:
            headers = {"Authorization": f"Bearer {token}"}
            async with http.request(method, admin + path, json=body, headers=headers) as resp:
                return resp.status, (await resp.json() if resp.content_length else None)

        # Log in with the key pair: an access token (30 minutes) and a refresh token.
        login = {"username": "ab12cd34", "apiKey": "6f1d2c3b-4a59-4e8f-9d7c-1b2a3c4d5e6f"}
        async with http.post(f"{admin}/auth/providers/mongodb-cloud/login", json=login) as resp:
            tokens = await resp.json()
        access, refresh = tokens["access_token"], tokens["refresh_token"]
        status, fresh = await call("POST", "/auth/session", refresh)  # a new access token
        assert status == 201 and "access_token" in fresh

        # The group's app: `_id` is what the user routes take (not the client app id).
        status, apps = await call("GET", f"/groups/{server.group_id}/apps?product=atlas", access)
        assert apps[0]["client_app_id"] == server.app_id
        app = f"/groups/{server.group_id}/apps/{apps[0]['_id']}"

        # Users: create one with email/password, list (50 per page, oldest first), get.
        ana = {"email": "ana@example.com", "password": "pa55word"}
        status, made = await call("POST", f"{app}/users", access, ana)
        assert status == 201
        async with App(server.app_id, base_url=server.url) as client:
            guest = await client.log_in(Credentials.anonymous())
            status, users = await call("GET", f"{app}/users", access)
            assert [u["_id"] for u in users] == [made["_id"], guest.id]
            status, page = await call("GET", f"{app}/users?after={made['_id']}", access)
            assert [u["_id"] for u in page] == [guest.id]
            status, user = await call("GET", f"{app}/users/{guest.id}", access)
            assert user["identities"][0]["provider_type"] == "anon-user" and user["disabled"] is False

            # Disable, enable, end every session, delete: 204 each.
            for action in ("disable", "enable", "logout"):
                assert (await call("PUT", f"{app}/users/{guest.id}/{action}", access))[0] == 204
            assert (await call("DELETE", f"{app}/users/{guest.id}", access))[0] == 204

            # Pending email/password users: list, confirm, delete.
            await client.email_password_auth.register_user("bo@example.com", "pa55word")
            await client.email_password_auth.register_user("cy@example.com", "pa55word")
            status, pending = await call("GET", f"{app}/user_registrations/pending_users", access)
            assert [p["login_ids"][0]["id"] for p in pending] == ["bo@example.com", "cy@example.com"]
            by_email = f"{app}/user_registrations/by_email"
            assert (await call("POST", f"{by_email}/bo@example.com/confirm", access))[0] == 204
            assert (await call("DELETE", f"{by_email}/cy@example.com", access))[0] == 204
            bo = await client.log_in(Credentials.email_password("bo@example.com", "pa55word"))
            assert bo.is_logged_in

        # End the admin session: its tokens stop working.
        assert (await call("DELETE", "/auth/session", refresh))[0] == 204
        assert (await call("GET", f"{app}/users", access))[0] == 401
