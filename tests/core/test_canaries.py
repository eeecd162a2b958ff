"""Secrets never reach logs (any logger at DEBUG), reprs or exception text (reliability S1)."""

from __future__ import annotations

import logging
import traceback

import pytest

from appusers import App, Credentials
from appusers.adapters import AiohttpTransport, FileStorage
from appusers.errors import AppError, RefreshTokenRejectedError, TransportError
from appusers.transport import Request, Response

from ._helpers import HookTransport, register_confirmed

PASSWORD = "canary-Pa55word-7f3a"


def _chain(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


async def test_no_secret_in_logs_reprs_or_errors(server, tmp_path, caplog):
    errors: list[BaseException] = []
    offline = {"on": False}

    async def hook(request: Request) -> Response | None:
        if offline["on"]:
            raise TransportError("simulated outage", method=request.method, url=request.url)
        return None

    caplog.set_level(logging.DEBUG)  # every logger, including aiohttp's and the server's
    transport = HookTransport(AiohttpTransport(), hook)
    async with App(server.app_id, base_url=server.url, storage=FileStorage(tmp_path / "s.json"),
                   transport=transport) as app:
        await register_confirmed(app, server, "canary@example.com", PASSWORD)
        user = await app.log_in(Credentials.email_password("canary@example.com", PASSWORD))
        key = await user.api_keys.create("canary-key") if hasattr(user, "api_keys") else None
        secrets = [PASSWORD, user.access_token, user.refresh_token]
        if key is not None:
            secrets.append(key.key)
        await user.functions.sum(1, 2)
        await server.revoke_access_tokens(user.id)
        await user.functions.sum(1, 2)  # a 401, a refresh, a retry: all logged at DEBUG
        secrets.append(user.access_token)
        try:
            await app.log_in(Credentials.email_password("canary@example.com", PASSWORD + "x"))
        except AppError as exc:
            errors.append(exc)
        offline["on"] = True
        try:
            await user.functions.sum(1, 2)
        except AppError as exc:
            errors.append(exc)
        offline["on"] = False
        await server.revoke_sessions(user.id)
        await server.revoke_access_tokens(user.id)
        with pytest.raises(RefreshTokenRejectedError) as rejected:
            await user.functions.sum(1, 2)
        errors.append(rejected.value)
        texts = [caplog.text, repr(user), str(user), repr(app), repr(app.storage), repr(transport)]
        texts += [repr(r) for r in transport.requests]
        texts += [repr(Credentials.email_password("canary@example.com", PASSWORD))]
        texts += [repr(e) + str(e) + _chain(e) for e in errors]
    assert len(errors) == 3
    assert all(s for s in secrets)
    for text in texts:
        for secret in secrets:
            assert secret not in text
