"""A function call's usual case is sent by Pipeline.call_function itself, not through
request()/send(): it must put on the wire what the general path puts there, with the token the
user holds at that moment, and report and log it the same way."""

from __future__ import annotations

import logging

import pytest

from appusers import App, Credentials
from appusers.adapters import AiohttpTransport
from appusers.errors import AppClosedError, InvalidArgumentError, ServiceError
from appusers.transport import Request, Response

from ._helpers import HookTransport


async def _record(request: Request) -> Response | None:
    return None


def _calls(transport: HookTransport) -> list[Request]:
    return [r for r in transport.requests if r.url.endswith("/functions/call")]


async def test_the_usual_call_sends_what_the_general_path_sends(server):
    transport = HookTransport(AiohttpTransport(), _record)
    async with App(server.app_id, base_url=server.url, transport=transport) as app:
        user = await app.log_in(Credentials.anonymous())
        pipeline = app._pipeline
        assert await pipeline.call_function(user, "sum", (1, 2)) == 3  # the usual case
        assert await pipeline.call_function(user, "sum", (1, 2), idempotent=True) == 3  # general
        fast, general = _calls(transport)
        assert (fast.method, fast.url, dict(fast.headers), fast.body, fast.timeout) == (
            general.method, general.url, dict(general.headers), general.body, general.timeout
        )
        assert fast.headers["Authorization"] == f"Bearer {user.access_token}"


class _Tampering:
    """Changes the headers of every request it was given once it has sent it."""

    def __init__(self, inner: HookTransport) -> None:
        self.inner = inner

    async def send(self, request: Request) -> Response:
        response = await self.inner.send(request)
        if isinstance(request.headers, dict):
            request.headers["Authorization"] = "Bearer tampered"
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_each_call_carries_the_token_the_user_holds_then(server):
    sent: list[str] = []

    async def record(request: Request) -> Response | None:
        if request.url.endswith("/functions/call"):
            sent.append(request.headers["Authorization"])  # as sent, before the tampering
        return None

    seen = HookTransport(AiohttpTransport(), record)
    async with App(server.app_id, base_url=server.url, transport=_Tampering(seen)) as app:
        user = await app.log_in(Credentials.anonymous())
        first = user.access_token
        assert await user.functions.sum(1, 2) == 3
        assert await user.functions.sum(1, 2) == 3
        await user.refresh_access_token()
        second = user.access_token
        assert second != first
        assert await user.functions.sum(1, 2) == 3
        other = await app.log_in(Credentials.anonymous())  # two users taking turns
        assert await other.functions.sum(1, 2) == 3
        assert await user.functions.sum(1, 2) == 3
        assert sent == [f"Bearer {first}", f"Bearer {first}", f"Bearer {second}",
                        f"Bearer {other.access_token}", f"Bearer {second}"]


async def test_a_401_on_the_usual_call_refreshes_once_and_retries(server):
    transport = HookTransport(AiohttpTransport(), _record)
    async with App(server.app_id, base_url=server.url, transport=transport) as app:
        user = await app.log_in(Credentials.anonymous())
        assert await user.functions.sum(1, 2) == 3
        old = user.access_token
        await server.revoke_access_tokens(user.id)
        before = server.stats["refresh"]
        assert await user.functions.sum(2, 2) == 4
        assert server.stats["refresh"] == before + 1
        sent = [r.headers["Authorization"] for r in _calls(transport)]
        assert sent == [f"Bearer {old}", f"Bearer {old}", f"Bearer {user.access_token}"]


async def test_the_usual_call_is_reported_and_logged_without_its_token(server, caplog):
    caplog.set_level(logging.DEBUG, logger="appusers")
    answers: list[Response] = []

    async def unavailable(request: Request) -> Response | None:
        return answers.pop() if answers and request.url.endswith("/functions/call") else None

    async with App(server.app_id, base_url=server.url,
                   transport=HookTransport(AiohttpTransport(), unavailable)) as app:
        user = await app.log_in(Credentials.anonymous())
        assert await user.functions.sum(1, 2) == 3
        assert app.connectivity.online
        answers.append(Response(503, {"content-type": "application/json"}, b'{"error": "busy"}'))
        with pytest.raises(ServiceError):
            await user.functions.sum(1, 2)  # sent once: a function call is never retried
        assert not app.connectivity.online
        assert await user.functions.sum(1, 2) == 3
        assert app.connectivity.online
        token = user.access_token
    lines = [r.getMessage() for r in caplog.records if "functions/call" in r.getMessage()]
    assert any(line.endswith("/functions/call -> 200") for line in lines)
    assert any(line.endswith("/functions/call -> 503") for line in lines)
    assert token is not None and not any(token in r.getMessage() for r in caplog.records)


async def test_the_usual_call_checks_what_the_general_path_checks(server):
    async with App(server.app_id, base_url=server.url) as app:
        user = await app.log_in(Credentials.anonymous())
        assert await user.functions.sum(1, 2) == 3
        with pytest.raises(InvalidArgumentError, match="Extended JSON"):
            await user.call_function("sum", object())
        with pytest.raises(InvalidArgumentError, match="non-empty"):
            await user.call_function("", 1)
    with pytest.raises(AppClosedError):
        await user.call_function("sum", 1, 2)
