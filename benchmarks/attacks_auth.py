"""Attacks on the server's authentication, request handling and files (issue 9 items 4-13).

Each attack runs against a real LocalServer on 127.0.0.1 (or an ``appusers serve`` child
process where descriptors are counted) and returns one row for docs/reliability.md.
Run through ``python benchmarks/reliability.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _attack_kit import row, serve

T = "tests/server"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def _forge(payload: dict[str, Any], alg: str, key: bytes = b"") -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    if alg == "none":
        return f"{head}.{body}."
    return f"{head}.{body}.{_b64(hmac.new(key, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


async def crafted_tokens() -> dict[str, str]:
    """S9: forged, tampered, expired-looking and wrong-kind tokens on profile and session."""
    async with serve() as c:
        tokens = await c.login()
        claims, rclaims = _payload(tokens["access_token"]), _payload(tokens["refresh_token"])
        bad_access = [
            _forge(claims, "none"),
            _forge(claims, "none").rstrip("."),
            _forge({**claims, "exp": int(time.time()) + 10**6}, "HS256", b"guess"),
            _forge({**claims, "exp": 1}, "HS256", b"guess"),
            tokens["access_token"][:-4] + "AAAA",
            tokens["refresh_token"],
            _forge({**claims, "typ": "refresh"}, "HS512", b"guess"),
            "",
            "a.b.c",
        ]
        bad_refresh = [_forge(rclaims, "none"), tokens["access_token"], tokens["refresh_token"][:-3] + "xyz"]
        refused = 0
        for token in bad_access:
            status, _h, _b = await c.request("GET", f"{c.auth}/profile", token=token)
            refused += status == 401
        for token in bad_refresh:
            status, _h, _b = await c.request("POST", f"{c.auth}/session", token=token)
            refused += status == 401
        total = len(bad_access) + len(bad_refresh)
    return row(
        "S9",
        "Forged (alg none, guessed key), tampered, truncated and wrong-kind tokens",
        f"{T}/test_server_security.py::test_crafted_tokens_are_rejected",
        f"{refused}/{total} crafted tokens rejected with 401",
        refused == total,
    )


async def custom_data_lockout() -> dict[str, str]:
    """S15: custom data of 9,000 characters and of 100 KB must not lock its user out."""
    locked = 0
    details = []
    async with serve() as c:
        for size in (9_000, 100_000):
            tokens = await c.login()
            status, _data = await c.call(tokens["access_token"], "set_custom_data", {"blob": "x" * size})
            status, _h, body = await c.request("POST", f"{c.auth}/session", token=tokens["refresh_token"])
            if status != 201:
                locked += 1
                details.append(f"{size:,} chars: refresh {status}")
                continue
            access = body["access_token"]
            status, _h, _b = await c.request("GET", f"{c.auth}/profile", token=access)
            status2, _r = await c.call(access, "sum", 1, 2)
            ok = status == 200 and status2 == 200
            locked += not ok
            details.append(f"{size:,} chars: token {len(access):,} B, profile {status}, call {status2}")
    return row(
        "S15",
        "Custom data of 9,000 characters / 100 KB bloats the access token",
        "— (fix and test pending)",
        f"users locked out: {locked}/2 ({'; '.join(details)})",
        locked == 0,
    )


async def cors_reflection() -> dict[str, str]:
    """S22: does any origin come back reflected together with credentials?"""
    origins = ["https://evil.example", "null", "http://localhost:3000"]
    reflected = 0
    async with serve() as c:
        for origin in origins:
            for method in ("GET", "OPTIONS"):
                _s, headers, _b = await c.request(
                    method,
                    f"{c.app}/location",
                    headers={
                        "Origin": origin,
                        "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": "X-Evil, Authorization",
                    },
                )
                if (
                    headers.get("Access-Control-Allow-Origin") == origin
                    and headers.get("Access-Control-Allow-Credentials") == "true"
                ):
                    reflected += 1
    total = len(origins) * 2
    return row(
        "S22",
        "Requests and preflights from foreign origins",
        "— (fix and test pending)",
        f"reflected origins with credentials: {reflected}/{total}",
        reflected == 0,
    )


ATTACKS: list[Callable[[], Awaitable[dict[str, str]]]] = [
    crafted_tokens,
    custom_data_lockout,
    cors_reflection,
]


def run() -> list[dict[str, str]]:
    async def all_rows() -> list[dict[str, str]]:
        return [await attack() for attack in ATTACKS]

    return asyncio.run(all_rows())


if __name__ == "__main__":
    for r in run():
        print(r)
