"""``app.email_password_auth`` end to end, each call with its bad-input path.

Every failure must raise a typed error and change nothing: not the server's
tables, outbox or function outbox, not the client's storage file; and the old
password keeps working.
"""

from __future__ import annotations

import pytest

from appusers import Credentials, UserState
from appusers.adapters import FileStorage
from appusers.errors import (
    AccountNameInUseError,
    BadRequestError,
    InvalidArgumentError,
    InvalidPasswordError,
    ServiceUserNotFoundError,
    UserAlreadyConfirmedError,
    UserpassTokenInvalidError,
)

from ._helpers import PASSWORD, Snapshot, email_user, function_outbox, register_confirmed

NEW_PASSWORD = "n3w-passw0rd"


def mails(server, email, kind):
    return [m for m in server.read_outbox() if m["email"] == email and m["kind"] == kind]


async def can_log_in(app, email, password):
    try:
        user = await app.log_in(Credentials.email_password(email, password))
    except InvalidPasswordError:
        return False
    await user.log_out()
    return True


# -- register / confirm ---------------------------------------------------------------------------


async def test_register_confirm_and_log_in(app, server):
    auth = app.email_password_auth
    await auth.register_user("ana@example.com", PASSWORD)
    [mail] = mails(server, "ana@example.com", "confirm")
    with pytest.raises(InvalidPasswordError, match="confirmation required"):
        await app.log_in(Credentials.email_password("ana@example.com", PASSWORD))
    await auth.confirm_user(mail["token"], mail["tokenId"])
    user = await app.log_in(Credentials.email_password("ana@example.com", PASSWORD))
    assert user.is_logged_in and app.current_user is user
    assert user.profile.email == "ana@example.com"
    assert [i.provider_type for i in user.identities] == ["local-userpass"]


async def test_register_an_existing_email_fails_and_changes_nothing(app, server, store_path):
    await email_user(app, server, "ana@example.com")
    before = Snapshot(server, store_path)
    with pytest.raises(AccountNameInUseError, match="name already in use") as info:
        await app.email_password_auth.register_user("ana@example.com", "another-password")
    assert info.value.status == 409
    before.assert_unchanged(userpass=1)
    assert await can_log_in(app, "ana@example.com", PASSWORD)
    assert not await can_log_in(app, "ana@example.com", "another-password")


async def test_with_enumeration_prevention_register_of_a_taken_email_succeeds_and_changes_nothing(
        start_server, make_app, tmp_path):
    # The server's default: a prober cannot tell a taken address from a free one, so the SDK
    # sees a successful registration; the owner's account is untouched.
    server = await start_server(prevent_enumeration=True)
    app = await make_app(base_url=server.url, storage=FileStorage(tmp_path / "client" / "users.json"))
    await email_user(app, server, "ana@example.com")
    before = Snapshot(server, tmp_path / "client" / "users.json")
    await app.email_password_auth.register_user("ana@example.com", "another-password")
    await app.email_password_auth.send_reset_password_email("nobody@example.com")
    await app.email_password_auth.resend_confirmation_email("nobody@example.com")
    before.assert_unchanged(userpass=3)
    assert await can_log_in(app, "ana@example.com", PASSWORD)
    assert not await can_log_in(app, "ana@example.com", "another-password")


@pytest.mark.parametrize("password", ["12345", "x" * 129])
async def test_register_with_a_password_of_bad_length_is_refused_by_the_server(app, server, store_path,
                                                                                  password):
    await app.log_in(Credentials.anonymous())
    before = Snapshot(server, store_path)
    with pytest.raises(BadRequestError, match="between 6 and 128 characters"):
        await app.email_password_auth.register_user("ana@example.com", password)
    before.assert_unchanged(userpass=1)
    # Nothing was created: the address is still free.
    await register_confirmed(app, server, "ana@example.com")


@pytest.mark.parametrize(
    "email, password",
    [("", PASSWORD), ("   ", PASSWORD), (None, PASSWORD), ("ana@example.com", ""),
     ("ana@example.com", 1234567)],
)
async def test_register_bad_arguments_are_refused_before_any_request(app, server, store_path, email,
                                                                     password):
    before = Snapshot(server, store_path)
    with pytest.raises(InvalidArgumentError):
        await app.email_password_auth.register_user(email, password)
    before.assert_unchanged()


async def test_confirm_with_a_wrong_or_used_token_fails_and_changes_nothing(app, server, store_path):
    auth = app.email_password_auth
    await auth.register_user("ana@example.com", PASSWORD)
    [mail] = mails(server, "ana@example.com", "confirm")
    before = Snapshot(server, store_path)
    with pytest.raises(UserpassTokenInvalidError, match="invalid token data"):
        await auth.confirm_user("not-the-token", mail["tokenId"])
    with pytest.raises(UserpassTokenInvalidError):
        await auth.confirm_user(mail["token"], "65a1f0c2e4b0a1b2c3d4e5f6")
    before.assert_unchanged(userpass=2)
    assert not await can_log_in(app, "ana@example.com", PASSWORD)  # still pending
    # The wrong guesses did not use up the real token.
    await auth.confirm_user(mail["token"], mail["tokenId"])
    before = Snapshot(server, store_path)
    with pytest.raises(UserpassTokenInvalidError):
        await auth.confirm_user(mail["token"], mail["tokenId"])  # single use
    before.assert_unchanged(userpass=1)


@pytest.mark.parametrize("token, token_id",
                         [("", "65a1f0c2e4b0a1b2c3d4e5f6"), ("t", ""), (None, "x"), ("t", 7)])
async def test_confirm_bad_arguments_are_refused_before_any_request(app, server, store_path, token,
                                                                    token_id):
    before = Snapshot(server, store_path)
    with pytest.raises(InvalidArgumentError):
        await app.email_password_auth.confirm_user(token, token_id)
    before.assert_unchanged()


# -- resend confirmation ---------------------------------------------------------------------------


async def test_resend_confirmation_email_replaces_the_token(app, server):
    auth = app.email_password_auth
    await auth.register_user("ana@example.com", PASSWORD)
    await auth.resend_confirmation_email("ana@example.com")
    first, second = mails(server, "ana@example.com", "confirm")
    assert first["token"] != second["token"]
    with pytest.raises(UserpassTokenInvalidError):
        await auth.confirm_user(first["token"], first["tokenId"])  # superseded
    await auth.confirm_user(second["token"], second["tokenId"])
    assert await can_log_in(app, "ana@example.com", PASSWORD)


async def test_resend_confirmation_email_failures_change_nothing(app, server, store_path):
    auth = app.email_password_auth
    await register_confirmed(app, server, "ana@example.com")
    before = Snapshot(server, store_path)
    with pytest.raises(UserAlreadyConfirmedError, match="already confirmed"):
        await auth.resend_confirmation_email("ana@example.com")
    with pytest.raises(ServiceUserNotFoundError, match="user not found"):
        await auth.resend_confirmation_email("nobody@example.com")
    with pytest.raises(InvalidArgumentError):
        await auth.resend_confirmation_email("")
    before.assert_unchanged(userpass=2)


# -- custom confirmation function -----------------------------------------------------------------


async def test_retry_custom_confirmation_runs_the_function_again(start_server, make_app):
    server = await start_server(confirmation_function=True)
    app = await make_app(base_url=server.url)
    auth = app.email_password_auth
    # Confirmed by the function at once.
    await auth.register_user("ana@example.com", PASSWORD)
    assert await can_log_in(app, "ana@example.com", PASSWORD)
    # Pending on the first run, confirmed when the function runs again.
    await auth.register_user("second@example.com", PASSWORD)
    assert not await can_log_in(app, "second@example.com", PASSWORD)
    await auth.retry_custom_confirmation("second@example.com")
    assert await can_log_in(app, "second@example.com", PASSWORD)
    assert [m["email"] for m in function_outbox(server)] == [
        "ana@example.com", "second@example.com", "second@example.com",
    ]
    assert server.read_outbox() == []  # the function, not the server, "sends" the tokens


async def test_pending_custom_confirmation_is_finished_with_the_token_the_function_sent(
    start_server, make_app
):
    server = await start_server(confirmation_function=True)
    app = await make_app(base_url=server.url)
    auth = app.email_password_auth
    await auth.register_user("pending@example.com", PASSWORD)
    await auth.retry_custom_confirmation("pending@example.com")  # still pending, new token
    first, second = function_outbox(server)
    with pytest.raises(UserpassTokenInvalidError):
        await auth.confirm_user(first["token"], first["tokenId"])
    await auth.confirm_user(second["token"], second["tokenId"])
    assert await can_log_in(app, "pending@example.com", PASSWORD)


async def test_retry_custom_confirmation_failures_change_nothing(start_server, make_app, tmp_path):
    server = await start_server(confirmation_function=True)
    from appusers.adapters import FileStorage

    store_path = tmp_path / "other-client.json"
    app = await make_app(base_url=server.url, storage=FileStorage(store_path))
    auth = app.email_password_auth
    await auth.register_user("ana@example.com", PASSWORD)
    before = Snapshot(server, store_path)
    with pytest.raises(UserAlreadyConfirmedError):
        await auth.retry_custom_confirmation("ana@example.com")
    with pytest.raises(ServiceUserNotFoundError):
        await auth.retry_custom_confirmation("nobody@example.com")
    with pytest.raises(InvalidArgumentError):
        await auth.retry_custom_confirmation("  ")
    before.assert_unchanged(userpass=2)


async def test_retry_refused_by_the_function_keeps_the_account_pending(start_server, make_app):
    server = await start_server(confirmation_function=True)
    app = await make_app(base_url=server.url)
    auth = app.email_password_auth
    await auth.register_user("flip@example.com", PASSWORD)  # pending
    before = Snapshot(server)
    with pytest.raises(BadRequestError, match='failed to confirm user "flip@'):
        await auth.retry_custom_confirmation("flip@example.com")
    assert before.requests() == {"userpass": 1}
    after = Snapshot(server)
    assert after.tables["userpass"] == before.tables["userpass"]  # still there, still unconfirmed
    assert after.tables["email_tokens"] == []  # and no token can confirm it behind the function's back
    for sent in function_outbox(server):
        with pytest.raises(UserpassTokenInvalidError):
            await auth.confirm_user(sent["token"], sent["tokenId"])
    assert not await can_log_in(app, "flip@example.com", PASSWORD)


async def test_registration_rejected_by_the_confirmation_function_leaves_nothing(start_server, make_app):
    server = await start_server(confirmation_function=True)
    app = await make_app(base_url=server.url)
    auth = app.email_password_auth
    await auth.register_user("warmup@example.com", PASSWORD)
    before = Snapshot(server)
    with pytest.raises(BadRequestError, match='failed to confirm user "fail@'):
        await auth.register_user("fail@example.com", PASSWORD)
    assert before.requests() == {"userpass": 1}
    assert Snapshot(server).tables == before.tables
    # The token the function was handed died with the registration.
    [sent] = [m for m in function_outbox(server) if m["email"] == "fail@example.com"]
    with pytest.raises(UserpassTokenInvalidError):
        await auth.confirm_user(sent["token"], sent["tokenId"])
    assert not await can_log_in(app, "fail@example.com", PASSWORD)


# -- reset by email -----------------------------------------------------------------------------------


async def test_reset_password_by_email(app, server):
    auth = app.email_password_auth
    user = await email_user(app, server, "ana@example.com")
    await auth.send_reset_password_email("ana@example.com")
    [mail] = mails(server, "ana@example.com", "reset")
    await auth.reset_password(mail["token"], mail["tokenId"], NEW_PASSWORD)
    assert user.is_logged_in  # a reset does not end existing sessions on this device
    await user.log_out()
    assert not await can_log_in(app, "ana@example.com", PASSWORD)
    again = await app.log_in(Credentials.email_password("ana@example.com", NEW_PASSWORD))
    assert again is user and again.state is UserState.LOGGED_IN


async def test_send_reset_password_email_failures_change_nothing(app, server, store_path):
    await register_confirmed(app, server, "ana@example.com")
    before = Snapshot(server, store_path)
    with pytest.raises(ServiceUserNotFoundError, match="user not found"):
        await app.email_password_auth.send_reset_password_email("nobody@example.com")
    with pytest.raises(InvalidArgumentError):
        await app.email_password_auth.send_reset_password_email(None)  # type: ignore[arg-type]
    before.assert_unchanged(userpass=1)


async def test_reset_password_failures_change_nothing(app, server, store_path):
    auth = app.email_password_auth
    await register_confirmed(app, server, "ana@example.com")
    await auth.send_reset_password_email("ana@example.com")
    [mail] = mails(server, "ana@example.com", "reset")
    before = Snapshot(server, store_path)
    with pytest.raises(UserpassTokenInvalidError):
        await auth.reset_password("wrong-token", mail["tokenId"], NEW_PASSWORD)
    with pytest.raises(BadRequestError, match="between 6 and 128"):
        await auth.reset_password(mail["token"], mail["tokenId"], "short")
    for bad in [("", mail["tokenId"], NEW_PASSWORD), (mail["token"], "", NEW_PASSWORD),
                (mail["token"], mail["tokenId"], "")]:
        with pytest.raises(InvalidArgumentError):
            await auth.reset_password(*bad)
    before.assert_unchanged(userpass=2)
    assert await can_log_in(app, "ana@example.com", PASSWORD)
    # Neither failure used the token up.
    await auth.reset_password(mail["token"], mail["tokenId"], NEW_PASSWORD)
    assert await can_log_in(app, "ana@example.com", NEW_PASSWORD)


# -- reset by function ---------------------------------------------------------------------------------


async def test_call_reset_password_function_success_and_pending(app, server):
    auth = app.email_password_auth
    await register_confirmed(app, server, "ana@example.com")
    await auth.call_reset_password_function("ana@example.com", NEW_PASSWORD, "success", {"n": 7})
    [sent] = function_outbox(server)
    assert sent["args"] == ["success", {"n": 7}]  # the extra arguments reach the function as EJSON
    assert await can_log_in(app, "ana@example.com", NEW_PASSWORD)
    assert not await can_log_in(app, "ana@example.com", PASSWORD)
    # "pending": nothing changes until the token the function sent is used.
    await auth.call_reset_password_function("ana@example.com", "third-password", "pending")
    assert await can_log_in(app, "ana@example.com", NEW_PASSWORD)
    pending = function_outbox(server)[-1]
    await auth.reset_password(pending["token"], pending["tokenId"], "third-password")
    assert await can_log_in(app, "ana@example.com", "third-password")


async def test_call_reset_password_function_failures_change_nothing(app, server, store_path):
    auth = app.email_password_auth
    await register_confirmed(app, server, "ana@example.com")
    before = Snapshot(server, store_path)
    with pytest.raises(ServiceUserNotFoundError):
        await auth.call_reset_password_function("nobody@example.com", NEW_PASSWORD, "success")
    with pytest.raises(BadRequestError, match="between 6 and 128"):
        await auth.call_reset_password_function("ana@example.com", "short", "success")
    for bad in [("", NEW_PASSWORD), ("ana@example.com", ""), ("ana@example.com", NEW_PASSWORD, object())]:
        with pytest.raises(InvalidArgumentError):
            await auth.call_reset_password_function(*bad)
    before.assert_unchanged(userpass=2)
    assert await can_log_in(app, "ana@example.com", PASSWORD)


async def test_reset_refused_by_the_function_changes_nothing(app, server, store_path):
    auth = app.email_password_auth
    await register_confirmed(app, server, "ana@example.com")
    before = Snapshot(server, store_path)
    with pytest.raises(BadRequestError, match='failed to reset password for user "ana@'):
        await auth.call_reset_password_function("ana@example.com", NEW_PASSWORD, "nope")
    assert before.requests() == {"userpass": 1}
    assert Snapshot(server).tables == before.tables
    # The token the function was handed must not reset the password after the refusal.
    refused = function_outbox(server)[-1]
    with pytest.raises(UserpassTokenInvalidError):
        await auth.reset_password(refused["token"], refused["tokenId"], NEW_PASSWORD)
    assert await can_log_in(app, "ana@example.com", PASSWORD)
    assert not await can_log_in(app, "ana@example.com", NEW_PASSWORD)


async def test_reset_function_not_configured_is_a_typed_error(start_server, make_app):
    server = await start_server(reset_function=False)
    app = await make_app(base_url=server.url)
    await register_confirmed(app, server, "ana@example.com")
    before = Snapshot(server)
    with pytest.raises(BadRequestError, match="reset function is not configured"):
        await app.email_password_auth.call_reset_password_function("ana@example.com", NEW_PASSWORD)
    before.assert_unchanged(userpass=1)
    assert await can_log_in(app, "ana@example.com", PASSWORD)
