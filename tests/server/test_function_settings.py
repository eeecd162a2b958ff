"""Function settings in the TOML form, and the demo's provider hooks, which clients cannot call."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import attrs
import pytest
from _server_testkit import Api, assert_error, fast

from appusers.server import LocalServer, load_config

FUNCTIONS = """
import asyncio


def visible(context, *args):
    return {"system": context.running_as_system(), "args": list(args)}


def hidden(context):
    return {"system": context.running_as_system(), "user": context.user.id if context.user else None}


async def relay(context):
    return await context.functions.execute("hidden")


def gated(context):
    return "open"


def settings_seen(context):
    return {
        "plan": context.values.get("plan"),
        "limits": context.values.get("limits"),
        "tag": context.environment.tag,
        "region": context.environment.values.get("region"),
    }


async def on_login(context, auth_event):
    store = context.services.get("mongodb-atlas").db("audit").collection("logins")
    await store.insert_one({"user_id": auth_event["user"]["id"], "op": auth_event["operationType"],
                            "providers": auth_event["providers"]})


async def audit(context):
    store = context.services.get("mongodb-atlas").db("audit").collection("logins")
    found = await store.find({"user_id": context.user.id})
    return [{"op": d["op"], "providers": d["providers"]} for d in found]


def mutate(context):
    limits = context.values.get("limits")
    limits["max"] = 0
    return context.values.get("limits")
"""

SETTINGS = """
app_id = "toml-app"

[functions]
module = "functions.py"

[[functions.config]]
name = "hidden"
private = true
run_as_system = true

[[functions.config]]
name = "gated"
can_evaluate = { "%%user.data.name" = { "%in" = "%%values.vips" } }

[[functions.config]]
name = "shout"
source = "extra/shout.py"

[[functions.config]]
name = "audit"
run_as_system = true

[[functions.config]]
name = "on_login"
private = true

[values]
plan = "pro"
vips = ["vera"]
limits = { max = 5 }

[environment]
tag = "qa"
values = { region = "eu" }

[[triggers]]
name = "audit_logins"
type = "AUTHENTICATION"
function_name = "on_login"
config = { operation_type = ["CREATE", "LOGIN"], providers = ["custom-function"] }

[providers.anon-user]

[providers.custom-function]
function = "authenticate"
"""


@pytest.fixture
async def toml_server(tmp_path: Path) -> AsyncIterator[LocalServer]:
    (tmp_path / "functions.py").write_text(
        FUNCTIONS + "\n\ndef authenticate(context, payload):\n    return {'id': payload['username'], "
        "'name': payload['username']}\n"
    )
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "shout.py").write_text("def main(context, text):\n    return text.upper()\n")
    (tmp_path / "server.toml").write_text(SETTINGS)
    config = fast(load_config(tmp_path / "server.toml"))
    async with LocalServer(config=config, data_dir=tmp_path / "data") as server:
        yield server


@pytest.fixture
def toml_api(toml_server: LocalServer, http: aiohttp.ClientSession) -> Api:
    return Api(toml_server, http)


async def test_toml_private_system_and_execute(toml_api: Api) -> None:
    anonymous = (await toml_api.login("anon-user"))["access_token"]
    status, body = await toml_api.call(anonymous, "hidden")
    assert_error(status, body, 404, "FunctionNotFound", "function not found: 'hidden'")
    status, body = await toml_api.call(anonymous, "relay")
    assert status == 200 and body["system"] is True and body["user"] is not None
    assert await toml_api.call(anonymous, "visible", 1) == (
        200,
        {"system": False, "args": [{"$numberInt": "1"}]},
    )
    assert await toml_api.call(anonymous, "shout", "hey") == (200, "HEY")
    # The authentication hook of custom-function is private without being listed.
    status, body = await toml_api.call(anonymous, "authenticate", {"username": "x"})
    assert_error(status, body, 404, "FunctionNotFound")


async def test_toml_can_evaluate_values_and_environment(toml_api: Api) -> None:
    vera = (await toml_api.login("custom-function", username="vera"))["access_token"]
    walt = (await toml_api.login("custom-function", username="walt"))["access_token"]
    assert await toml_api.call(vera, "gated") == (200, "open")
    status, body = await toml_api.call(walt, "gated")
    assert_error(status, body, 400, "FunctionExecutionError", 'rule not matched for function "gated"')
    status, body = await toml_api.call(walt, "settings_seen")
    assert status == 200 and body == {
        "plan": "pro",
        "limits": {"max": {"$numberInt": "5"}},
        "tag": "qa",
        "region": "eu",
    }
    # A function cannot change a value for everyone else.
    assert (await toml_api.call(walt, "mutate"))[1] == {"max": {"$numberInt": "5"}}


async def test_toml_trigger_runs(toml_server: LocalServer, toml_api: Api) -> None:
    first = await toml_api.login("custom-function", username="tia")
    await toml_api.login("custom-function", username="tia")
    await toml_api.login("anon-user")  # not a listed provider: no event
    await toml_server.wait_for_triggers()
    status, body = await toml_api.call(first["access_token"], "audit")
    assert status == 200 and sorted(body, key=lambda e: e["op"]) == [
        {"op": "CREATE", "providers": ["custom-function"]},
        {"op": "LOGIN", "providers": ["custom-function"]},
        {"op": "LOGIN", "providers": ["custom-function"]},
    ]


@pytest.mark.parametrize(
    "hook", ["authenticate", "reset_password", "verify_facebook", "exchange_google_code"]
)
async def test_demo_provider_hooks_are_private(api: Api, hook: str) -> None:
    """The issue's finding: any logged-in client (anonymous too) could call the log-in hooks."""
    for login in (await api.login("anon-user"), await api.login("custom-function", username="eve")):
        status, body = await api.call(login["access_token"], hook, "demo-fb:1", "success")
        assert_error(status, body, 404, "FunctionNotFound", f"function not found: {hook!r}")
    token = (await api.login("anon-user"))["access_token"]
    assert await api.call(token, "sum", 1, 2) == (200, {"$numberInt": "3"})


async def test_demo_hooks_still_work_for_their_providers(api: Api) -> None:
    assert (await api.login("custom-function", username="hook-user"))["user_id"]
    assert (await api.login("oauth2-facebook", accessToken="demo-fb:77:Fay"))["user_id"]


async def test_hook_made_public_by_a_setting(tmp_path: Path) -> None:
    (tmp_path / "server.toml").write_text(
        "[functions]\nmodule = 'demo'\n[[functions.config]]\nname = 'authenticate'\nprivate = false\n"
        "[providers.custom-function]\n"
    )
    config = attrs.evolve(fast(load_config(tmp_path / "server.toml")))
    async with (
        LocalServer(config=config, data_dir=tmp_path / "data") as server,
        aiohttp.ClientSession() as http,
    ):
        api = Api(server, http)
        token = (await api.login("custom-function", username="pat"))["access_token"]
        assert await api.call(token, "authenticate", {"username": "x"}) == (200, "x")


async def test_trigger_failures_are_logged_without_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "f.py").write_text(
        "def authenticate(context, payload):\n    return payload['username']\n\n"
        "def explode(context, auth_event):\n    raise ValueError('token=abc.def.ghi')\n"
    )
    (tmp_path / "server.toml").write_text(
        "[functions]\nmodule = 'f.py'\n[providers.custom-function]\n[[triggers]]\nname = 'boom'\n"
        "type = 'AUTHENTICATION'\nfunction_name = 'explode'\n"
        "config = { operation_type = 'LOGIN', providers = ['custom-function'] }\n"
    )
    caplog.set_level(logging.INFO, logger="appusers.server")
    async with LocalServer(
        config=fast(load_config(tmp_path / "server.toml")), data_dir=tmp_path / "d"
    ) as server:
        async with aiohttp.ClientSession() as http:
            tokens = await Api(server, http).login("custom-function", username="zed")
        await server.wait_for_triggers()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "authentication trigger 'boom' failed: FunctionExecutionError" in text
    assert "abc.def.ghi" not in text and tokens["refresh_token"] not in text


async def test_can_evaluate_with_a_failing_function_denies(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text(
        "def authenticate(context, payload):\n"
        "    return {'id': payload['username'], 'name': payload['username']}\n\n"
        "def explode(context, *args):\n    raise RuntimeError('no')\n\n"
        "def allow(context, user_id):\n    return user_id.startswith('a')\n\n"
        "def guarded(context):\n    return 'in'\n\n"
        "def checked(context):\n    return 'in'\n"
    )
    (tmp_path / "server.toml").write_text(
        "[functions]\nmodule = 'f.py'\n[providers.custom-function]\n"
        "[[functions.config]]\nname = 'guarded'\n"
        "can_evaluate = { '%%true' = { '%function' = { name = 'explode', arguments = [] } } }\n"
        "[[functions.config]]\nname = 'checked'\n"
        "can_evaluate = { '%%true' = { '%function' = "
        "{ name = 'allow', arguments = ['%%user.data.name'] } } }\n"
        "[[functions.config]]\nname = 'allow'\nprivate = true\n"
    )
    config = fast(load_config(tmp_path / "server.toml"))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as server, aiohttp.ClientSession() as http:
        api = Api(server, http)
        token = (await api.login("custom-function", username="x"))["access_token"]
        status, body = await api.call(token, "guarded")
        assert_error(status, body, 400, "FunctionExecutionError", 'rule not matched for function "guarded"')
        # %function with an expanded argument: allow(name) decides; private functions are fine there.
        status, body = await api.call(token, "checked")
        assert_error(status, body, 400, "FunctionExecutionError", 'rule not matched for function "checked"')
        ann = (await api.login("custom-function", username="ann"))["access_token"]
        assert await api.call(ann, "checked") == (200, "in")


@pytest.mark.parametrize("name", ["hidden ", "HIDDEN", "./hidden", "x/../hidden", "hidden\x00", "__init__"])
async def test_names_near_a_private_function_are_unknown(toml_api: Api, name: str) -> None:
    token = (await toml_api.login("anon-user"))["access_token"]
    status, body = await toml_api.call(token, name)
    assert_error(status, body, 404, "FunctionNotFound")
