"""Error paths that a live server makes awkward, through MockTransport: each raises a typed
error and commits nothing."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from typing import Any

import pytest

import appusers
from appusers import App, Credentials, RetryPolicy, UserState
from appusers.adapters import MemoryStorage, MockTransport
from appusers.errors import (
    AppClosedError,
    AppError,
    BadTokenError,
    HTTPStatusError,
    InvalidArgumentError,
    InvalidSessionError,
    MalformedJsonError,
    MissingJsonKeyError,
    ResponseError,
    ServiceError,
    TransportError,
    UserpassTokenInvalidError,
)
from appusers.transport import Request, Response

JSON = {"content-type": "application/json"}


def jwt(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iat": now, "exp": now + 1800, **claims}
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def ok(body: Any, status: int = 200) -> Response:
    return Response(status, JSON, json.dumps(body).encode())


LOGIN = {
    "user_id": "u1", "access_token": jwt(sub="u1"), "refresh_token": jwt(sub="u1"), "device_id": "d" * 24,
}
PROFILE = {"type": "normal", "identities": [{"id": "x", "provider_type": "anon-user"}], "data": {}}


def server(overrides: dict[str, Response | Exception]):
    def handler(request: Request) -> Response:
        path = request.url.split("?")[0]
        for suffix, answer in overrides.items():
            if path.endswith(suffix):
                if isinstance(answer, Exception):
                    raise answer
                return answer
        if path.endswith("/location"):
            return ok({"hostname": "http://127.0.0.1:1", "ws_hostname": "ws://127.0.0.1:1"})
        if path.endswith("/login"):
            return ok(LOGIN)
        if path.endswith("/auth/profile"):
            return ok(PROFILE)
        if path.endswith("/functions/call"):
            return ok({"$numberLong": "5"})
        return Response(404)

    return MockTransport(handler)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"/login": Response(200, JSON, b"{not json")}, MalformedJsonError),
        ({"/login": ok({"user_id": "u1"})}, MissingJsonKeyError),
        ({"/login": ok({**LOGIN, "access_token": "not-a-jwt"})}, BadTokenError),
        ({"/login": ok({**LOGIN, "refresh_token": "a.b"})}, BadTokenError),
        ({"/login": ok({**LOGIN, "access_token": "x.eyJhIjoxfQ.y"})}, BadTokenError),  # no exp/iat
        ({"/login": ok({"error": "nope", "error_code": "InvalidPassword"}, 200)}, ServiceError),
        ({"/login": Response(502, {"content-type": "text/html"}, b"<html>502</html>")}, HTTPStatusError),
        ({"/login": TransportError("refused", method="POST", url="x")}, TransportError),
        ({"/login": ok({**LOGIN, "user_id": "u\t1"})}, ResponseError),
        ({"/login": ok({**LOGIN, "user_id": ""})}, ResponseError),
        ({"/location": TransportError("dns", method="GET", url="x")}, TransportError),
        ({"/location": ok({"no": "hostname"})}, MissingJsonKeyError),
        ({"/auth/profile": ok({"identities": "nope", "data": {}})}, MissingJsonKeyError),
        ({"/auth/profile": Response(500)}, HTTPStatusError),
    ],
)
async def test_failed_login_raises_typed_error_and_commits_nothing(overrides, error):
    storage = MemoryStorage()
    async with App("app", base_url="http://127.0.0.1:1", storage=storage,
                   transport=server(overrides)) as app:
        with pytest.raises(error) as info:
            await app.log_in(Credentials.anonymous())
        assert isinstance(info.value, AppError)
        assert app.all_users == {} and app.current_user is None
        assert await storage.items("") == {}


async def test_location_failure_is_retried_by_the_next_request():
    calls = {"n": 0}

    def handler(request: Request) -> Response:
        if request.url.endswith("/location"):
            calls["n"] += 1
            if calls["n"] == 1:
                raise TransportError("refused", method="GET", url=request.url)
            return ok({"hostname": "http://127.0.0.1:1"})
        if request.url.endswith("/login"):
            return ok(LOGIN)
        return ok(PROFILE)

    # Without retries (RetryPolicy.none()) the failed location fails the call; the next call
    # asks again.
    async with App("app", base_url="http://127.0.0.1:1", transport=MockTransport(handler),
                   retry=RetryPolicy.none(), storage=MemoryStorage()) as app:
        with pytest.raises(TransportError):
            await app.log_in(Credentials.anonymous())
        user = await app.log_in(Credentials.anonymous())
        assert user.is_logged_in and calls["n"] == 2
        await app.log_in(Credentials.anonymous(reuse=False))
        assert calls["n"] == 2  # cached after success
    # With the default policy the location is retried within the same call.
    calls["n"] = 0

    async def no_wait(_seconds: float) -> None:
        return None

    async with App("app", base_url="http://127.0.0.1:1", transport=MockTransport(handler),
                   retry=RetryPolicy(sleep=no_wait), storage=MemoryStorage()) as app:
        assert (await app.log_in(Credentials.anonymous())).is_logged_in and calls["n"] == 2


async def test_error_body_codes_map_to_classes_and_keep_fields():
    body = {"error": "invalid token data", "error_code": "UserpassTokenInvalid", "link": "http://logs/1"}
    transport = server({"/local-userpass/confirm": ok(body, 400)})
    async with App("app", base_url="http://127.0.0.1:1", transport=transport) as app:
        with pytest.raises(UserpassTokenInvalidError) as info:
            await app.email_password_auth.confirm_user("t", "id")
    exc = info.value
    assert (exc.status, exc.error_code, exc.link, str(exc)) == (400, "UserpassTokenInvalid", "http://logs/1",
                                                                 "invalid token data")
    assert exc.code == "UserpassTokenInvalid" and not exc.retryable


async def test_unknown_error_code_is_a_plain_service_error_with_raw_code():
    transport = server({"/functions/call": ok({"error": "x", "error_code": "BrandNewCode"}, 418)})
    async with App("app", base_url="http://127.0.0.1:1", transport=transport) as app:
        user = await app.log_in(Credentials.anonymous())
        with pytest.raises(ServiceError) as info:
            await user.call_function("f")
    assert type(info.value) is ServiceError and info.value.error_code == "BrandNewCode"


async def test_function_results_are_ejson_decoded():
    async with App("app", base_url="http://127.0.0.1:1", transport=server({})) as app:
        user = await app.log_in(Credentials.anonymous())
        result = await user.functions.anything()
    assert result == 5 and type(result).__name__ == "Int64"


async def test_a_401_on_the_retry_is_final_no_refresh_loop():
    counts = {"refresh": 0, "call": 0}

    def handler(request: Request) -> Response:
        if request.url.endswith("/auth/session"):
            counts["refresh"] += 1
            return ok({"access_token": jwt(sub="u1", n=counts["refresh"])}, 201)
        if request.url.endswith("/functions/call"):
            counts["call"] += 1
            return ok({"error": "invalid session", "error_code": "InvalidSession"}, 401)
        return server({})._handler(request)

    async with App("app", base_url="http://127.0.0.1:1", transport=MockTransport(handler)) as app:
        user = await app.log_in(Credentials.anonymous())
        with pytest.raises(InvalidSessionError):
            await user.functions.f()
        assert counts == {"refresh": 1, "call": 2}
        assert user.state is UserState.LOGGED_IN


async def test_skewed_client_clock_never_causes_more_than_one_refresh_per_request(monkeypatch):
    counts = {"refresh": 0}
    real = server({})

    def handler(request: Request) -> Response:
        if request.url.endswith("/auth/session"):
            counts["refresh"] += 1
            return ok({"access_token": jwt(sub="u1", n=counts["refresh"])}, 201)
        return real._handler(request)

    async with App("app", base_url="http://127.0.0.1:1", transport=MockTransport(handler)) as app:
        user = await app.log_in(Credentials.anonymous())
        monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0 + 86_400 * 3)  # days fast
        for _ in range(5):
            assert await user.functions.f() == 5
        assert counts["refresh"] == 0  # the token's lifetime is measured on the monotonic clock


async def test_bad_arguments_raise_before_any_io():
    transport = server({})
    with pytest.raises(InvalidArgumentError):
        App("")
    with pytest.raises(InvalidArgumentError):
        App("x", base_url="ftp://host")
    with pytest.raises(InvalidArgumentError):
        App("x", timeout=0)
    async with App("app", base_url="http://127.0.0.1:1", transport=transport) as app:
        user = await app.log_in(Credentials.anonymous())
        sent = len(transport.requests)
        with pytest.raises(InvalidArgumentError):
            await user.call_function("f", object())
        with pytest.raises(InvalidArgumentError):
            await user.call_function("")
        with pytest.raises(InvalidArgumentError):
            await app.log_in("anonymous")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            await user.api_keys.enable("not-an-id")
        assert len(transport.requests) == sent


async def test_closed_app_refuses_work():
    app = App("app", base_url="http://127.0.0.1:1", transport=server({}))
    await app.open()
    await app.aclose()
    await app.aclose()  # idempotent
    with pytest.raises(AppClosedError):
        await app.log_in(Credentials.anonymous())


def test_import_appusers_loads_no_gui_toolkit_and_no_http_library():
    code = (
        "import sys, appusers; bad = [m for m in ('PySide6', 'PyQt5', 'PyQt6', 'kivy', 'aiohttp', "
        "'appusers.server') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_are_exactly_all():
    # pytest rewrites the asserts of every module of a distribution that registers a pytest11 plugin
    # (appusers.testing), which leaves '@py_builtins'/'@pytest_ar' in the module: not identifiers,
    # so no import can reach them.
    public = {name for name in dir(appusers) if name.isidentifier() and not name.startswith("_")}
    # Submodules (the plugin loads appusers.testing, which imports appusers.sync's pieces).
    modules = {"errors", "storage", "transport", "adapters", "bindings", "server", "sync", "testing"}
    assert public - modules == set(appusers.__all__) - {"__version__"}
    assert len(set(appusers.__all__)) == len(appusers.__all__)
