"""Helpers shared by the attacks_* modules: a real LocalServer on loopback and a tiny client."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from appusers.server import LocalServer, ServerConfig, load_config
from appusers.server._config import ScryptSettings

P = "/api/client/v2.0"
#: Cheap scrypt for attacks that are not about hashing cost.
CHEAP_SCRYPT = ScryptSettings(n=2**4, r=1, p=1)


def demo(**changes: Any) -> ServerConfig:
    """The demo settings with cheap scrypt and ``changes`` applied."""
    return attrs.evolve(load_config(None), **{"scrypt": CHEAP_SCRYPT, **changes})


@contextlib.asynccontextmanager
async def serve(config: ServerConfig | None = None, **options: Any) -> AsyncIterator[Client]:
    """A started LocalServer in a temporary data directory and a client for it."""
    with tempfile.TemporaryDirectory(prefix="appusers-attack-") as tmp:
        async with (
            LocalServer(config=config or demo(), data_dir=Path(tmp) / "data", **options) as server,
            aiohttp.ClientSession() as http,
        ):
            yield Client(server, http)


class Client:
    """Requests against one server; answers are ``(status, headers, parsed body)``."""

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
        session: aiohttp.ClientSession | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        async with (session or self.http).request(method, url, data=data, headers=h) as resp:
            text = await resp.read()
            parsed: Any = text.decode(errors="replace") if text else None
            if text and resp.headers.get("Content-Type") == "application/json":
                parsed = json.loads(text)
            return resp.status, dict(resp.headers), parsed

    async def login(self, provider: str = "anon-user", **payload: Any) -> dict[str, Any]:
        status, _h, body = await self.request(
            "POST", f"{self.app}/auth/providers/{provider}/login", body=payload
        )
        if status != 200:
            raise RuntimeError(f"login failed: {status} {body}")
        result: dict[str, Any] = body
        return result

    async def confirmed_user(self, email: str, password: str) -> dict[str, Any]:
        """Register, confirm through the outbox, log in."""
        url = f"{self.app}/auth/providers/local-userpass"
        status, _h, body = await self.request(
            "POST", f"{url}/register", body={"email": email, "password": password}
        )
        if status != 201:
            raise RuntimeError(f"register failed: {status} {body}")
        mail = [m for m in self.server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
        status, _h, body = await self.request(
            "POST", f"{url}/confirm", body={"token": mail["token"], "tokenId": mail["tokenId"]}
        )
        if status != 204:
            raise RuntimeError(f"confirm failed: {status} {body}")
        return await self.login("local-userpass", username=email, password=password)

    async def call(self, token: str, name: str, *args: Any, service: str | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"name": name, "arguments": list(args)}
        if service:
            body["service"] = service
        status, _h, data = await self.request("POST", f"{self.app}/functions/call", token=token, body=body)
        return status, data


def row(id_: str, attack: str, test: str, figure: str, met: bool | None) -> dict[str, str]:
    """One row of the reliability table (``met=None``: a figure reported without a target)."""
    verdict = "reported" if met is None else ("met" if met else "missed")
    return {"id": id_, "attack": attack, "test": test, "figure": figure, "verdict": verdict}
