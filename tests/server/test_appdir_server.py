"""The exported app (tests/server/appdir_export) served for real, used by appusers' own client.

Functions: private ones are unknown to clients (anonymous callers included) but reachable through
``context.functions.execute``; ``can_evaluate`` guards; ``context`` values, environment and request
(without the Authorization header). Authentication triggers: the right ``authEvent`` for every
operation and provider; a failing or never-ending trigger does not break the log-in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import jwt
import pytest
from _server_testkit import Api, assert_error, fast, jwt_payload

from appusers import App, Credentials
from appusers.errors import FunctionExecutionError, FunctionNotFoundError, ServiceError
from appusers.server import LocalServer, ServerConfig
from appusers.server._config import AdminKey, AdminSettings
from appusers.server.appdir import load_app_dir

EXPORT = Path(__file__).with_name("appdir_export")
SECRETS = {"jwtSigningKey": "tasktracker-test-signing-key-0123456789", "mailerTokenSecret": "mailer-Zq9"}
MakeApp = Callable[..., Awaitable[App]]


def exported(function_timeout: float = 60.0) -> ServerConfig:
    loaded = fast(load_app_dir(EXPORT, secrets=SECRETS))
    return attrs.evolve(loaded, limits=attrs.evolve(loaded.limits, function_timeout=function_timeout))


#: An Admin API key pair, so that admin deletes can be checked against the export's triggers.
ADMIN_PUBLIC = "tasktracker-admin"
ADMIN_PRIVATE = "5f0c2a9e-4b7d-4e1a-9c3f-8d6b2e7a1c40"


@pytest.fixture
def config() -> ServerConfig:
    return attrs.evolve(
        exported(), admin=AdminSettings(keys=(AdminKey.from_private(ADMIN_PUBLIC, ADMIN_PRIVATE),))
    )


def custom_jwt(sub: str, name: str) -> str:
    claims = {"sub": sub, "aud": "tasktracker", "name": name, "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRETS["jwtSigningKey"], algorithm="HS256")


async def events(user: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await user.call_function("myAuthEvents")
    return result


# ---------------------------------------------------------------------------------- functions


async def test_values_and_environment_reach_functions(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    user = await app.log_in(Credentials.anonymous())
    assert await user.call_function("greet", "Ana") == {
        "greeting": "Hello, Ana!",
        "support": "help@tasktracker.example.com",
        "hasMailerToken": True,  # a value from a secret, given to the loader
        "missing": None,
        "environment": "development",
        "apiBase": "https://dev.tasktracker.example.com",
    }
    assert await user.call_function("utils/shout", "quiet") == "QUIET"


@pytest.mark.parametrize("name", ["authFunc", "confirmFunc", "resetFunc", "secretSauce", "recordAuthEvent"])
async def test_private_functions_answer_as_unknown_ones(api: Api, name: str) -> None:
    anonymous = (await api.login("anon-user"))["access_token"]
    named = (await api.login("custom-function", username="mallory"))["access_token"]
    for token in (anonymous, named):
        status, body = await api.call(token, name, {"username": "x"})
        unknown_status, unknown = await api.call(token, name + "X", {"username": "x"})
        assert_error(status, body, 404, "FunctionNotFound")
        # Same status, code and message shape as a name that does not exist: privacy is not probeable.
        assert (status, body["error"].replace(repr(name), "NAME")) == (
            unknown_status,
            unknown["error"].replace(repr(name + "X"), "NAME"),
        )


async def test_private_function_through_functions_execute(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    user = await app.log_in(Credentials.anonymous())
    with pytest.raises(FunctionNotFoundError):
        await user.call_function("secretSauce", 1)
    assert await user.call_function("callSecret", 1, "two") == {
        "outerSystem": False,  # callSecret runs as its caller
        "inner": {"system": True, "caller": user.id, "args": [1, "two"]},  # secretSauce as system
    }


async def test_can_evaluate_refuses_and_admits(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    auth = app.email_password_auth
    await auth.register_user("worker@tasktracker.example.com", "password1")
    await auth.register_user("boss@tasktracker.example.com", "password1")  # confirmed by confirmFunc
    worker = await app.log_in(Credentials.email_password("worker@tasktracker.example.com", "password1"))
    with pytest.raises(FunctionExecutionError) as refused:
        await worker.call_function("adminReport")
    assert str(refused.value) == 'rule not matched for function "adminReport"'
    anonymous = await app.log_in(Credentials.anonymous())
    with pytest.raises(FunctionExecutionError):
        await anonymous.call_function("adminReport")
    boss = await app.log_in(Credentials.email_password("boss@tasktracker.example.com", "password1"))
    assert await boss.call_function("adminReport") == {
        "report": "all tasks",
        "for": "boss@tasktracker.example.com",
    }


async def test_context_request_has_no_secrets(api: Api) -> None:
    tokens = await api.login("anon-user")
    status, _h, body = await api.request(
        "POST",
        f"{api.app}/functions/call?trace=on&api_key=k-123&baas_at=t-456",
        token=tokens["access_token"],
        body={"name": "whoCalls", "arguments": []},
        headers={
            "X-Request-Id": "r-1",
            "Cookie": "session=c-789",
            "X-Appusers-Admin": "admin-secret",
            "X-Refresh-Token": "rt-000",
        },
    )
    assert status == 200, body
    assert body["user"] == tokens["user_id"] and body["system"] is False
    assert body["remote"] == "127.0.0.1"
    headers = {name.lower(): values for name, values in body["headers"].items()}
    assert headers["x-request-id"] == ["r-1"]
    for secret_header in ("authorization", "cookie", "x-appusers-admin", "x-refresh-token"):
        assert secret_header not in headers
    assert body["query"] == "trace=on"
    text = str(body)
    for secret in (tokens["access_token"], "c-789", "admin-secret", "rt-000", "k-123", "t-456"):
        assert secret not in text


async def test_javascript_only_function_says_so(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    user = await app.log_in(Credentials.anonymous())
    with pytest.raises(FunctionExecutionError) as failed:
        await user.call_function("legacyReport")
    assert "only a JavaScript source (legacyReport.js)" in str(failed.value)
    assert "legacyReport.py defining main(context, *args)" in str(failed.value)


async def test_custom_token_provider_from_the_export(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    user = await app.log_in(Credentials.jwt(custom_jwt("ext-1", "Ext One")))
    assert user.profile.name == "Ext One"
    claims = {"sub": "x", "aud": "tasktracker", "exp": int(time.time()) + 60}
    wrong = jwt.encode(claims, "another-signing-key-0123456789abcdef0123")
    with pytest.raises(ServiceError) as refused:
        await app.log_in(Credentials.jwt(wrong))
    assert refused.value.error_code == "AuthError"


async def test_disabled_provider_is_off(api: Api) -> None:
    status, _h, body = await api.request(
        "POST", f"{api.app}/auth/providers/oauth2-apple/login", body={"id_token": "x"}
    )
    assert_error(status, body, 404, "AuthProviderNotFound")


async def test_reset_function_of_the_export(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    auth = app.email_password_auth
    email = "reset@tasktracker.example.com"
    await auth.register_user(email, "password1")
    with pytest.raises(ServiceError):  # the wrong answer refuses the reset
        await auth.call_reset_password_function(email, "password2", "green")
    await auth.call_reset_password_function(email, "password2", "blue")
    user = await app.log_in(Credentials.email_password(email, "password2"))
    assert user.is_logged_in


async def test_confirmation_function_refuses_other_domains(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    with pytest.raises(ServiceError) as refused:
        await app.email_password_auth.register_user("someone@elsewhere.example.org", "password1")
    assert "failed to confirm" in str(refused.value)


# ---------------------------------------------------------------------------------- triggers


def event(operation: str, providers: list[str], user_id: str, user_type: str = "normal") -> dict[str, Any]:
    return {"operationType": operation, "providers": providers, "userId": user_id, "type": user_type}


def summary(recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events in a stable order: triggers of one event run concurrently, in no set order."""
    found = []
    for item in recorded:
        # Triggers run as system, without a calling user, with an aware UTC time.
        assert item["system"] is True and item["contextUser"] is None and item["timeIsAware"] is True
        user = item["user"]
        found.append(event(item["operationType"], item["providers"], user["id"], user["type"]))
    return sorted(found, key=lambda e: e["operationType"])


async def test_create_and_login_triggers_per_provider(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    anon = await app.log_in(Credentials.anonymous(reuse=False))
    fn = await app.log_in(Credentials.function({"username": "fiona"}))
    await app.email_password_auth.register_user("tom@tasktracker.example.com", "password1")
    up = await app.log_in(Credentials.email_password("tom@tasktracker.example.com", "password1"))
    tok = await app.log_in(Credentials.jwt(custom_jwt("ext-9", "Nine")))
    await server.wait_for_triggers()
    logins = ((anon, "anon-user"), (fn, "custom-function"), (up, "local-userpass"), (tok, "custom-token"))
    for user, provider in logins:
        assert summary(await events(user)) == [
            event("CREATE", [provider], user.id),
            event("LOGIN", [provider], user.id),
        ], provider
    # A second log-in of the same user is a LOGIN only.
    await app.log_in(Credentials.email_password("tom@tasktracker.example.com", "password1"))
    await server.wait_for_triggers()
    recorded = await events(up)
    assert sorted(e["operationType"] for e in recorded) == ["CREATE", "LOGIN", "LOGIN"]
    for item in recorded:
        identities = item["user"]["identities"]
        assert identities == [{"id": identities[0]["id"], "provider_type": "local-userpass"}]
        assert item["user"]["data"] == {"email": "tom@tasktracker.example.com"}


async def test_delete_trigger_lists_every_linked_provider(server: LocalServer, make_app: MakeApp) -> None:
    app = await make_app()
    user = await app.log_in(Credentials.anonymous(reuse=False))
    await app.email_password_auth.register_user("linked@tasktracker.example.com", "password1")
    await user.link_credentials(Credentials.email_password("linked@tasktracker.example.com", "password1"))
    watcher = await app.log_in(Credentials.function({"username": "watcher"}))
    user_id = user.id
    await app.delete_user(user)
    await server.wait_for_triggers()
    recorded = await watcher.call_function("myAuthEvents", user_id)  # runs as system: may look it up
    # Linking is neither a creation nor a log-in; DELETE lists every provider the user had.
    assert summary(recorded) == [
        event("CREATE", ["anon-user"], user_id),
        event("DELETE", ["anon-user", "local-userpass"], user_id),
        event("LOGIN", ["anon-user"], user_id),
    ]


async def test_admin_api_delete_fires_the_delete_trigger(make_app: MakeApp, server: LocalServer) -> None:
    app = await make_app()
    user = await app.log_in(Credentials.anonymous(reuse=False))
    watcher = await app.log_in(Credentials.function({"username": "watcher"}))
    user_id = user.id
    admin = f"{server.url}/api/admin/v3.0"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{admin}/auth/providers/mongodb-cloud/login",
            json={"username": ADMIN_PUBLIC, "apiKey": ADMIN_PRIVATE},
        ) as resp:
            assert resp.status == 200
            token = (await resp.json())["access_token"]
        path = f"{admin}/groups/{server.group_id}/apps/{server.app_object_id}/users/{user_id}"
        async with http.delete(path, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 204
        # An unknown user: no deletion, so no trigger.
        async with http.delete(path, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 404
    await server.wait_for_triggers()
    recorded = await watcher.call_function("myAuthEvents", user_id)
    assert summary(recorded) == [
        event("CREATE", ["anon-user"], user_id),
        event("DELETE", ["anon-user"], user_id),
        event("LOGIN", ["anon-user"], user_id),
    ]


async def test_failing_and_waiting_triggers_never_hold_up_login(
    server: LocalServer, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appusers.server")
    # custom-function log-ins also fire flakyOnLogin (raises) and slowOnLogin, which for this
    # user waits until released: the log-in answering at all proves it did not wait for it.
    tokens = await api.login("custom-function", username="slow-user")
    status, _h, _profile = await api.request("GET", f"{api.auth}/profile", token=tokens["access_token"])
    assert status == 200
    assert await api.call(tokens["access_token"], "slowControl", "state") in ((200, []), (200, ["started"]))
    assert await api.call(tokens["access_token"], "slowControl", "release")
    await server.wait_for_triggers()
    assert await api.call(tokens["access_token"], "slowControl", "state") == (200, ["finished", "started"])
    messages = [r.getMessage() for r in caplog.records]
    assert "authentication trigger 'flakyOnLogin' failed: FunctionExecutionError" in messages
    text = "\n".join(messages)
    assert "s3cr3t-trigger-detail" not in text and tokens["access_token"] not in text
    # The recording triggers of the same log-in still ran.
    status2, recorded = await api.call(tokens["access_token"], "myAuthEvents")
    assert status2 == 200 and sorted(e["operationType"] for e in recorded) == ["CREATE", "LOGIN"]


async def test_a_trigger_past_the_function_timeout_is_ended_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appusers.server")
    async with (
        LocalServer(config=exported(function_timeout=0.2), data_dir=tmp_path / "data") as server,
        aiohttp.ClientSession() as http,
    ):
        api = Api(server, http)
        tokens = await api.login("custom-function", username="slow-user")  # never released
        await server.wait_for_triggers()
        messages = [r.getMessage() for r in caplog.records]
        assert "authentication trigger 'slowOnLogin' failed: ExecutionTimeLimitExceeded" in messages
        # It may have been ended before it even started; it never finished.
        state = await api.call(tokens["access_token"], "slowControl", "state")
        assert state in ((200, []), (200, ["started"]))


async def test_disabled_trigger_does_not_run(
    server: LocalServer, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appusers.server")
    await api.login("anon-user")  # retiredOnLogin (disabled) would raise for anonymous log-ins
    await server.wait_for_triggers()
    assert not any("retiredOnLogin" in r.getMessage() for r in caplog.records)


async def test_user_creation_function(api: Api) -> None:
    tokens = await api.login("custom-function", username="new-user")
    # It ran before the first token: the profile it wrote is already the custom user data.
    assert jwt_payload(tokens["access_token"])["user_data"]["plan"] == "free"
    again = await api.login("custom-function", username="new-user")
    assert again["user_id"] == tokens["user_id"]  # runs once: the user exists now
    for _ in range(2):  # a failed creation leaves no user behind, so it runs (and fails) again
        status, _h, body = await api.request(
            "POST",
            f"{api.app}/auth/providers/custom-function/login",
            body={"username": "refused-at-creation"},
        )
        assert_error(status, body, 400, "FunctionExecutionError", "this user may not be created")
