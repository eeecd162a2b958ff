"""Email/password provider routes (#14-#20) with the outbox and custom functions.

These tests pin App Services' own answers (409 AccountNameInUse, 404 UserNotFound, ...), so
the module's server runs with ``prevent_user_enumeration = false``, the compatibility
setting; the default (identical answers for known and unknown addresses) is tested in
test_server_hostile.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest
from _server_testkit import Api, assert_error, fast

from appusers.server import LocalServer, ServerConfig, load_config
from appusers.server._config import UserpassSettings


@pytest.fixture
def config() -> ServerConfig:
    base = fast(load_config(None))
    assert base.providers.local_userpass is not None
    userpass = attrs.evolve(base.providers.local_userpass, prevent_user_enumeration=False)
    return attrs.evolve(base, providers=attrs.evolve(base.providers, local_userpass=userpass))


def route(api: Api, action: str) -> str:
    return f"{api.app}/auth/providers/local-userpass/{action}"


async def test_register_confirm_via_outbox(
    api: Api, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appusers.server")
    status, headers, body = await api.request(
        "POST", route(api, "register"), body={"email": "ana@example.com", "password": "s3cret!"}
    )
    assert status == 201 and body is None and "Content-Type" not in headers
    [mail] = server.read_outbox()
    assert set(mail) == {"email", "token", "tokenId", "kind"}
    assert mail["email"] == "ana@example.com" and mail["kind"] == "confirm"
    assert (server.data_dir / "outbox.jsonl").exists()
    assert mail["token"] not in caplog.text and "ana@example.com" in caplog.text
    # a wrong token neither confirms nor burns the real one
    status, _h, body = await api.request(
        "POST", route(api, "confirm"), body={"token": "nope", "tokenId": mail["tokenId"]}
    )
    assert_error(status, body, 400, "UserpassTokenInvalid", "invalid token data")
    status, _h, _b = await api.request(
        "POST", route(api, "confirm"), body={"token": mail["token"], "tokenId": mail["tokenId"]}
    )
    assert status == 204
    status, _h, body = await api.request(
        "POST", route(api, "confirm"), body={"token": mail["token"], "tokenId": mail["tokenId"]}
    )
    assert_error(status, body, 400, "UserpassTokenInvalid")
    await api.login("local-userpass", username="ana@example.com", password="s3cret!")


async def test_register_errors(api: Api) -> None:
    await api.register("bo@example.com")
    status, _h, body = await api.request(
        "POST", route(api, "register"), body={"email": "bo@example.com", "password": "s3cret!!"}
    )
    assert_error(status, body, 409, "AccountNameInUse", "name already in use")
    for password in ["short", "x" * 129]:
        status, _h, body = await api.request(
            "POST", route(api, "register"), body={"email": "new@example.com", "password": password}
        )
        assert_error(status, body, 400, "BadRequest", "password must be between 6 and 128 characters")
    status, _h, body = await api.request("POST", route(api, "register"), body={"password": "s3cret!!"})
    assert_error(status, body, 400, "MissingParameter")


async def test_confirm_send(api: Api, server: LocalServer) -> None:
    await api.register("cy@example.com")
    status, _h, _b = await api.request("POST", route(api, "confirm/send"), body={"email": "cy@example.com"})
    assert status == 204
    mails = [m for m in server.read_outbox() if m["email"] == "cy@example.com"]
    assert len(mails) == 2
    # only the newest token is valid
    status, _h, body = await api.request(
        "POST", route(api, "confirm"), body={"token": mails[0]["token"], "tokenId": mails[0]["tokenId"]}
    )
    assert_error(status, body, 400, "UserpassTokenInvalid")
    status, _h, _b = await api.request(
        "POST", route(api, "confirm"), body={"token": mails[1]["token"], "tokenId": mails[1]["tokenId"]}
    )
    assert status == 204
    status, _h, body = await api.request("POST", route(api, "confirm/send"), body={"email": "cy@example.com"})
    assert_error(status, body, 409, "UserAlreadyConfirmed", "already confirmed")
    status, _h, body = await api.request("POST", route(api, "confirm/send"), body={"email": "zz@example.com"})
    assert_error(status, body, 404, "UserNotFound", "user not found")


async def test_reset_via_email(api: Api, server: LocalServer) -> None:
    tokens = await api.confirmed_user("dee@example.com", "old-pass")
    status, _h, _b = await api.request("POST", route(api, "reset/send"), body={"email": "dee@example.com"})
    assert status == 204
    mail = server.read_outbox()[-1]
    assert mail["kind"] == "reset"
    status, _h, body = await api.request(
        "POST",
        route(api, "reset"),
        body={"password": "abc", "token": mail["token"], "tokenId": mail["tokenId"]},
    )
    assert_error(status, body, 400, "BadRequest", "password must be between 6 and 128 characters")
    status, _h, _b = await api.request(
        "POST",
        route(api, "reset"),
        body={"password": "new-pass", "token": mail["token"], "tokenId": mail["tokenId"]},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},  # realm-web may attach one: ignored
    )
    assert status == 204
    status, _h, body = await api.request(
        "POST",
        f"{api.app}/auth/providers/local-userpass/login",
        body={"username": "dee@example.com", "password": "old-pass"},
    )
    assert_error(status, body, 401, "InvalidPassword", "unauthorized")
    await api.login("local-userpass", username="dee@example.com", password="new-pass")
    status, _h, body = await api.request("POST", route(api, "reset/send"), body={"email": "zz@example.com"})
    assert_error(status, body, 404, "UserNotFound", "user not found")
    status, _h, body = await api.request(
        "POST", route(api, "reset"), body={"password": "new-pass2", "token": "x", "tokenId": "y"}
    )
    assert_error(status, body, 400, "UserpassTokenInvalid", "invalid token data")


async def test_reset_call_runs_the_reset_function(api: Api) -> None:
    await api.confirmed_user("eve@example.com", "old-pass")
    status, _h, _b = await api.request(
        "POST",
        route(api, "reset/call"),
        body={
            "email": "eve@example.com",
            "password": "new-pass",
            "arguments": ["success", {"$numberInt": "7"}],
        },
    )
    assert status == 204
    await api.login("local-userpass", username="eve@example.com", password="new-pass")
    status, _h, body = await api.request(
        "POST",
        route(api, "reset/call"),
        body={"email": "eve@example.com", "password": "other-pass", "arguments": []},
    )
    assert_error(status, body, 400, "BadRequest", 'failed to reset password for user "eve@example.com"')
    status, _h, body = await api.request(
        "POST",
        route(api, "reset/call"),
        body={"email": "zz@example.com", "password": "other-pass", "arguments": []},
    )
    assert_error(status, body, 404, "UserNotFound")


async def test_confirmation_function(tmp_path: Path, http) -> None:  # type: ignore[no-untyped-def]
    base = fast(load_config(None))
    providers = attrs.evolve(
        base.providers, local_userpass=UserpassSettings(confirmation_function="confirm_user")
    )
    async with LocalServer(config=attrs.evolve(base, providers=providers), data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        await api.register("ok@example.com")
        await api.login("local-userpass", username="ok@example.com", password="s3cret!!")  # confirmed at once
        status, _h, body = await api.request(
            "POST", route(api, "register"), body={"email": "fail@example.com", "password": "s3cret!!"}
        )
        assert_error(status, body, 400, "BadRequest", 'failed to confirm user "fail@example.com"')
        # a rejected registration leaves nothing behind: a retry is rejected again, not "name already in use"
        status, _h, body = await api.request(
            "POST", route(api, "register"), body={"email": "fail@example.com", "password": "s3cret!!"}
        )
        assert_error(status, body, 400, "BadRequest")


async def test_confirm_call(tmp_path: Path, http) -> None:  # type: ignore[no-untyped-def]
    base = fast(load_config(None))
    providers = attrs.evolve(
        base.providers, local_userpass=UserpassSettings(confirmation_function="confirm_user")
    )
    async with LocalServer(config=attrs.evolve(base, providers=providers), data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        await api.register("pending@example.com")
        status, _h, body = await api.request(
            "POST",
            f"{api.app}/auth/providers/local-userpass/login",
            body={"username": "pending@example.com", "password": "s3cret!!"},
        )
        assert_error(status, body, 401, "InvalidPassword", "confirmation required")
        status, _h, _b = await api.request(
            "POST", route(api, "confirm/call"), body={"email": "pending@example.com"}
        )
        assert status == 204  # still pending, but the call itself succeeded
        status, _h, body = await api.request(
            "POST", route(api, "confirm/call"), body={"email": "zz@example.com"}
        )
        assert_error(status, body, 404, "UserNotFound")
        await api.register("ok@example.com")
        status, _h, body = await api.request(
            "POST", route(api, "confirm/call"), body={"email": "ok@example.com"}
        )
        assert_error(status, body, 409, "UserAlreadyConfirmed")


async def test_auto_confirm(tmp_path: Path, http) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text("[providers.local-userpass]\nauto_confirm = true\n")
    async with LocalServer(config=fast(load_config(cfg)), data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        await api.register("auto@example.com")
        assert srv.read_outbox() == []
        await api.login("local-userpass", username="auto@example.com", password="s3cret!!")
        status, _h, body = await api.request(
            "POST", route(api, "reset/call"), body={"email": "auto@example.com", "password": "s3cret!!"}
        )
        assert_error(status, body, 400, "BadRequest")  # no reset function configured
