"""Helpers shared by the local server tests (imported by conftest and test modules)."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import attrs

from appusers.server import LocalServer, ServerConfig
from appusers.server._config import ScryptSettings

P = "/api/client/v2.0"
CHEAP_SCRYPT = ScryptSettings(n=2**4, r=1, p=1)


def fast(config: ServerConfig) -> ServerConfig:
    """``config`` with a test-cheap scrypt cost."""
    return attrs.evolve(config, scrypt=CHEAP_SCRYPT)


class Api:
    """Tiny helper around aiohttp for the App Services routes."""

    def __init__(self, server: LocalServer, http: aiohttp.ClientSession):
        self.server = server
        self.http = http
        self.app = f"{server.url}{P}/app/{server.app_id}"
        self.auth = f"{server.url}{P}/auth"

    async def request(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        async with self.http.request(method, url, data=data, headers=h) as resp:
            text = await resp.read()
            ct = resp.headers.get("Content-Type")
            parsed = (
                json.loads(text) if text and ct == "application/json" else (text.decode() if text else None)
            )
            return resp.status, dict(resp.headers), parsed

    async def login(self, provider_name: str = "anon-user", /, **payload: Any) -> dict[str, Any]:
        url = f"{self.app}/auth/providers/{provider_name}/login"
        status, _h, body = await self.request("POST", url, body=payload)
        assert status == 200, body
        return body

    async def register(self, email: str, password: str = "s3cret!!") -> None:
        status, _h, body = await self.request(
            "POST",
            f"{self.app}/auth/providers/local-userpass/register",
            body={"email": email, "password": password},
        )
        assert status == 201, body

    async def confirmed_user(self, email: str, password: str = "s3cret!!") -> dict[str, Any]:
        await self.register(email, password)
        mail = [m for m in self.server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
        status, _h, body = await self.request(
            "POST",
            f"{self.app}/auth/providers/local-userpass/confirm",
            body={"token": mail["token"], "tokenId": mail["tokenId"]},
        )
        assert status == 204, body
        return await self.login("local-userpass", username=email, password=password)

    async def call(self, token: str, name: str, *args: Any, service: str | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"name": name, "arguments": list(args)}
        if service:
            body["service"] = service
        status, _h, data = await self.request("POST", f"{self.app}/functions/call", token=token, body=body)
        return status, data


def jwt_payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def assert_error(status: int, body: object, want_status: int, code: str, message: str | None = None) -> None:
    assert status == want_status, body
    assert isinstance(body, dict) and set(body) == {"error", "error_code", "link"}, body
    assert body["error_code"] == code, body
    if message is not None:
        assert message in body["error"], body
