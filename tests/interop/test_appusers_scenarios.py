"""Interop suite, second half: the realm-web scenarios replayed with appusers' own client.

Issue 3: "The same scenarios pass with appusers' own client." Each ``*.mjs`` script of
this directory has one test here that runs the same steps, in the same order, under the
same step names (``with steps("anonymous.login"):``), so the two can be read side by
side. Like ``test_realm_web.py`` each test starts a :class:`~appusers.server.LocalServer`
in this process (port 0; a TOML config in ``tmp_path`` when the scenario needs non-demo
settings) and checks the same server-side effects: request counters, outbox kinds, no
secret in clear in the data directory, and the closing ``wire.content_types`` step over
every response the scenario's Apps received.

Differences are the clients', not the server's. Where appusers behaves differently from
realm-web 2.0.1 by design, the step asserts appusers' documented behaviour and says so
in a comment marked ``appusers:``. The main ones:

* logging out an anonymous user removes it (state ``REMOVED``), as realm-core and the
  Node SDK do; a refused refresh removes an anonymous user too;
* a logged-out user's call fails locally (``UserNotLoggedInError``) instead of sending
  ``Bearer null``;
* concurrent 401s share one refresh (single flight), where realm-web refreshes per call;
* responses and the ``user_data`` claim are EJSON-decoded exactly: an int64 stays an
  ``Int64`` (no precision loss above 2**53), a date in custom data is a ``datetime``;
* the email/password routes carry no access token;
* ``find_one_and_delete`` is sent as ``findOneAndDelete`` (realm-web sends it as
  ``findOneAndReplace`` without ``update``).

Server-side test controls are the Python ``LocalServer`` API (``revoke_access_tokens``,
``revoke_sessions``, ``inject_fault``, ``read_outbox``, ``stats``), not the HTTP admin
routes the Node scripts need. The demo settings use the suite's cheap scrypt cost
(``fast_config``), so the module runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from _pg_testkit import server_database
from _scenarios import EMAIL_PASSWORD_CONFIG, MONGODB_COLLECTION, MONGODB_CONFIG, PROFILE_CONFIG, STEPS
from bson import ObjectId, json_util
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from appusers import (
    ApiKey,
    App,
    ChangeEvent,
    ChangeStream,
    Credentials,
    DeleteResult,
    Identity,
    Profile,
    UpdateResult,
    UserState,
)
from appusers.adapters import AiohttpTransport, MemoryStorage
from appusers.errors import (
    AccountNameInUseError,
    APIKeyNotFoundError,
    InvalidPasswordError,
    RefreshTokenRejectedError,
    ServiceError,
    ServiceUserNotFoundError,
    UserAlreadyConfirmedError,
    UserNotLoggedInError,
    UserpassTokenInvalidError,
)
from appusers.server import LocalServer, load_config
from appusers.testing import fast_config
from appusers.transport import Request, Response, StreamResponse

pytestmark = pytest.mark.interop

#: Per-request budget (the Node harness gives each step 15 s).
STEP_TIMEOUT = 15.0
#: How long a watch waits for the change event a step has just caused.
EVENT_TIMEOUT = 10.0
API = "/api/client/v2.0"
WIRE_STEP = "wire.content_types"


# --------------------------------------------------------------------------- recording


@dataclass
class Exchange:
    """One request and its response head, as ``_harness.mjs``'s recording fetch keeps them.

    Bodies are kept for the steps that check the exact EJSON on the wire; they can hold
    tokens, so they never appear in a repr or an assertion message.
    """

    method: str
    path: str
    query: str  # with its leading "?", like URL.search; "" when there is none
    has_auth: bool
    status: int | None = None
    content_type: str | None = None
    streamed: bool = False
    request_body: bytes | None = field(default=None, repr=False)
    body: bytes | None = field(default=None, repr=False)

    def json(self) -> Any:
        """The response body, parsed as plain JSON (canonical wrappers stay visible)."""
        assert self.body is not None, f"no body recorded for {self.method} {self.path}"
        return json.loads(self.body)

    def request_json(self) -> Any:
        assert self.request_body is not None, f"no request body for {self.method} {self.path}"
        return json.loads(self.request_body)


def _exchange(request: Request) -> Exchange:
    parts = urlsplit(request.url)
    return Exchange(
        method=request.method,
        path=parts.path,
        query=f"?{parts.query}" if parts.query else "",
        has_auth=any(k.lower() == "authorization" for k in request.headers),
        request_body=request.body,
    )


class RecordingTransport:
    """A real :class:`AiohttpTransport` that logs every exchange (``recordingFetch`` in Node).

    Each App of a scenario gets its own, so steps can assert wire behaviour ("exactly
    one ``POST /auth/session``") and the closing step can check every content type.
    """

    def __init__(self) -> None:
        self.inner = AiohttpTransport(timeout=STEP_TIMEOUT)
        self.log: list[Exchange] = []

    async def send(self, request: Request) -> Response:
        entry = _exchange(request)
        self.log.append(entry)
        response = await self.inner.send(request)
        entry.status = response.status
        entry.content_type = response.headers.get("content-type")
        entry.body = response.body
        return response

    @contextlib.asynccontextmanager
    async def open_stream(
        self, request: Request, *, idle_timeout: float | None = None
    ) -> AsyncIterator[StreamResponse]:
        entry = _exchange(request)
        entry.streamed = True
        self.log.append(entry)
        async with self.inner.open_stream(request, idle_timeout=idle_timeout) as stream:
            entry.status = stream.status
            entry.content_type = stream.headers.get("content-type")
            yield stream

    async def aclose(self) -> None:
        await self.inner.aclose()

    # -- queries the steps use

    def count(self, method: str, path_suffix: str) -> int:
        return len(self.matching(method, path_suffix))

    def matching(self, method: str, path_suffix: str) -> list[Exchange]:
        return [e for e in self.log if e.method == method and e.path.endswith(path_suffix)]

    def last(self, method: str, path_suffix: str) -> Exchange:
        found = self.matching(method, path_suffix)
        assert found, f"no {method} ...{path_suffix} was sent"
        return found[-1]

    async def raw(self, method: str, url: str, *, bearer: str | None) -> tuple[int, Any]:
        """A request outside the client (what the Node scripts do with a bare ``fetch``)."""
        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        response = await self.send(Request(method, url, headers, None, STEP_TIMEOUT))
        return response.status, response.json()


# --------------------------------------------------------------------------- scenario kit


@dataclass
class Running:
    """A started LocalServer and the secrets a scenario handed to it."""

    server: LocalServer
    secrets: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def record_secret(self, kind: str, value: str | None) -> None:
        """Remember a secret to look for in the data directory (never printed)."""
        assert value, f"no {kind} to record"
        self.secrets.append((kind, value))

    def count(self, route: str) -> int:
        """The server's request counter for ``route``."""
        return int(self.server.stats.get(route, 0))

    def mails_for(self, email: str) -> list[dict[str, Any]]:
        return [m for m in self.server.read_outbox() if m["email"] == email]

    def mail_for(self, email: str, kind: str) -> dict[str, Any]:
        """The newest outbox mail for ``email`` whose kind contains ``kind`` (``mailFor``)."""
        mails = [m for m in self.mails_for(email) if kind in m["kind"].lower()]
        assert mails, f"no {kind!r} mail for {email} (kinds: {[m['kind'] for m in self.mails_for(email)]})"
        mail = mails[-1]
        assert isinstance(mail["token"], str) and isinstance(mail["tokenId"], str)
        return mail

    def url(self, path: str) -> str:
        return f"{self.server.url}{API}{path}"

    def assert_no_plaintext_secrets(self, expected_kinds: set[str]) -> None:
        """Reliability S7, as in the realm-web driver: no recorded secret in any data file."""
        assert {kind for kind, _ in self.secrets} == expected_kinds, "the scenario did not record its secrets"
        files = [p for p in self.server.data_dir.rglob("*") if p.is_file()]
        assert files, "the data directory is empty"
        for path in files:
            data = path.read_bytes()
            for kind, value in self.secrets:
                # The message names the kind and the file, never the secret.
                assert value.encode() not in data, f"a {kind} is stored in clear in {path.name}"


class Scenario:
    """Servers, Apps and named steps of one scenario; everything is closed at the end."""

    def __init__(self, stack: contextlib.AsyncExitStack, tmp_path: Path) -> None:
        self._stack = stack
        self._tmp = tmp_path
        self._servers = 0
        self.ran: list[str] = []
        self.recorders: list[RecordingTransport] = []

    async def start_server(self, config_toml: str | None = None) -> Running:
        """The demo settings, or ``config_toml`` read from a file; both with the cheap scrypt."""
        n = self._servers
        self._servers += 1
        if config_toml is None:
            config = fast_config()
        else:
            path = self._tmp / f"config-{n}.toml"
            path.write_text(textwrap.dedent(config_toml))
            config = attrs.evolve(load_config(path), scrypt=fast_config().scrypt)
        server = LocalServer(
            config=server_database(config), data_dir=self._tmp / f"data-{n}", host="127.0.0.1", port=0
        )
        await self._stack.enter_async_context(server)
        return Running(server)

    async def make_app(self, running: Running) -> tuple[App, RecordingTransport]:
        """An App of its own (own transport, own in-memory storage): a separate device."""
        recorder = RecordingTransport()
        self.recorders.append(recorder)
        app = App(
            running.server.app_id,
            base_url=running.server.url,
            transport=recorder,
            storage=MemoryStorage(),
            timeout=STEP_TIMEOUT,
        )
        await self._stack.enter_async_context(app)
        return app, recorder

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """One named step; a failure says which step failed and which passed before it."""
        try:
            yield
        except BaseException as exc:
            exc.add_note(f"interop step {name!r} failed; passed before it: {self.ran}")
            raise
        self.ran.append(name)

    def finish(self, expected: list[str]) -> None:
        """The closing wire check, then: exactly the realm-web script's steps ran, in order."""
        with self.step(WIRE_STEP):
            check_wire_conformance(self.recorders)
        assert self.ran == [*expected, WIRE_STEP]


def check_wire_conformance(recorders: list[RecordingTransport]) -> None:
    """Protocol §2.5/§15.2 over every response: JSON bodies carry exactly ``application/json``,
    streams ``text/event-stream``; no content type means an empty body; a 204 has none."""
    exchanges = [e for r in recorders for e in r.log if e.status is not None]
    assert exchanges, "no responses recorded"
    bad = []
    for e in exchanges:
        if e.content_type is None:
            ok = e.streamed or not e.body
        elif e.status == 204:
            ok = False
        else:
            ok = e.content_type == "application/json" or e.content_type.startswith("text/event-stream")
        if not ok:
            bad.append(f"{e.method} {e.path} -> {e.status} {e.content_type}")
    assert bad == [], "responses with a content type other than the protocol's"


@pytest.fixture
async def scenario(tmp_path: Path) -> AsyncIterator[Scenario]:
    async with contextlib.AsyncExitStack() as stack:
        yield Scenario(stack, tmp_path)


# --------------------------------------------------------------------------- small helpers


def claims_of(token: str | None) -> dict[str, Any]:
    """The payload of a compact JWT (no verification: the client's view)."""
    assert isinstance(token, str) and token.count(".") == 2, "not a 3-part JWT"
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(payload: dict[str, Any], secret: str, **header: Any) -> str:
    """An HS256 compact JWT (``header`` overrides, e.g. ``alg="none"``), like ``signJwt``."""
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = _b64url(json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(signature)}"


def unique_email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(5)}@example.com"


def random_password() -> str:
    return f"pw-{secrets.token_urlsafe(12)}"


def is_object_id_hex(value: object) -> bool:
    """A plain 24-digit lower-case hex string (``/^[0-9a-f]{24}$/`` in the scripts)."""
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{24}", value) is not None


def ok_status(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def is_4xx(err: ServiceError) -> bool:
    return 400 <= int(err.status) < 500


async def register_confirmed(app: App, running: Running, email: str, password: str) -> None:
    """Register ``email`` and confirm it with the token from the outbox."""
    await app.email_password_auth.register_user(email, password)
    mail = running.mail_for(email, "confirm")
    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])


async def next_event(stream: ChangeStream) -> ChangeEvent:
    return await asyncio.wait_for(anext(stream), EVENT_TIMEOUT)


# --------------------------------------------------------------------------- anonymous.mjs


async def test_anonymous(scenario: Scenario) -> None:
    running = await scenario.start_server()
    app, http = await scenario.make_app(running)

    with scenario.step("anonymous.login"):
        user = await app.log_in(Credentials.anonymous())
        assert is_object_id_hex(user.id), "user.id should be a 24-hex ObjectId string"
        assert app.current_user is user
        assert user.state is UserState.LOGGED_IN
        assert [i.provider_type for i in user.identities] == ["anon-user"]
        # Wire order the spec describes: location, login, profile.
        paths = [f"{e.method} {e.path.replace(f'/app/{app.id}/', '/app/{id}/')}" for e in http.log]
        assert paths[:3] == [
            f"GET {API}/app/{{id}}/location",
            f"POST {API}/app/{{id}}/auth/providers/anon-user/login",
            f"GET {API}/auth/profile",
        ]

    with scenario.step("anonymous.tokens"):
        # Both tokens are 3-part JWTs with integer iat/exp; the access token's sub is the user.
        for token in (user.access_token, user.refresh_token):
            assert isinstance(token, str) and len(token.split(".")) == 3
        decoded = claims_of(user.access_token)
        assert isinstance(decoded["exp"], int) and isinstance(decoded["iat"], int)
        assert decoded["exp"] > decoded["iat"], "exp must be after iat"
        assert decoded["sub"] == user.id
        assert isinstance(user.device_id, str)

    with scenario.step("anonymous.profile"):
        profile = await user.refresh_profile()
        assert len(user.identities) == 1
        assert user.identities[0].provider_type == "anon-user"
        assert isinstance(user.identities[0].id, str)
        assert isinstance(profile, Profile)
        assert profile.type == "normal"

    with scenario.step("anonymous.function_call"):
        assert await user.functions.sum(2, 3) == 5
        assert (await user.call_function("whoami"))["id"] == user.id

    with scenario.step("anonymous.reuse"):
        # Credentials.anonymous() reuses the logged-in anonymous user: no new login request.
        logins = http.count("POST", "/anon-user/login")
        again = await app.log_in(Credentials.anonymous())
        assert again is user
        assert http.count("POST", "/anon-user/login") == logins

    with scenario.step("anonymous.logout"):
        await user.log_out()
        # appusers: an anonymous user cannot log back in, so logging out removes it (as
        # realm-core and the Node SDK do); realm-web keeps it as "logged-out".
        assert user.state is UserState.REMOVED
        assert user.id not in app.all_users
        assert user.access_token is None, "the access token was cleared"
        assert app.current_user is None
        logout = http.matching("DELETE", "/auth/session")
        assert len(logout) == 1, "one DELETE /auth/session"
        assert ok_status(logout[0].status), f"logout status {logout[0].status}"

    with scenario.step("anonymous.new_login_after_logout"):
        # After logout the anonymous user is gone for good: a new login makes a new user.
        # appusers: no realm-web quirk to dodge, Credentials.anonymous() (reuse) is fine
        # because the removed user is no candidate.
        other = await app.log_in(Credentials.anonymous())
        assert other.id != user.id
        await other.log_out()

    with scenario.step("anonymous.call_after_logout_fails"):
        # appusers: a logged-out user's call fails locally, nothing is sent.
        sent = len(http.log)
        with pytest.raises(UserNotLoggedInError):
            await user.functions.sum(1, 1)
        assert len(http.log) == sent
        # The request realm-web sends in that state ("Bearer null") is a 401 on the server.
        status, _ = await http.raw("POST", running.url(f"/app/{app.id}/functions/call"), bearer="null")
        assert status == 401

    with scenario.step("anonymous.garbage_refresh_token_rejected"):
        status, body = await http.raw("POST", running.url("/auth/session"), bearer="not-a-token")
        assert status == 401
        assert body["error_code"] == "InvalidSession"

    scenario.finish(STEPS["anonymous"])
    # Two distinct anonymous users logged in; the reuse in between sent nothing.
    assert running.count("login") == 2, dict(running.server.stats)


# --------------------------------------------------------------------------- email_password.mjs


async def test_email_password(scenario: Scenario) -> None:
    running = await scenario.start_server(EMAIL_PASSWORD_CONFIG)
    app, http = await scenario.make_app(running)
    auth = app.email_password_auth
    email = unique_email("ep")
    password = random_password()
    new_password = random_password()
    running.record_secret("password", password)
    running.record_secret("password", new_password)

    with scenario.step("email.register"):
        await auth.register_user(email, password)
        assert ok_status(http.last("POST", "/local-userpass/register").status)

    with scenario.step("email.register_duplicate_fails"):
        with pytest.raises(AccountNameInUseError):
            await auth.register_user(email, password)

    with scenario.step("email.login_before_confirm_fails"):
        with pytest.raises(ServiceError):
            await app.log_in(Credentials.email_password(email, password))

    with scenario.step("email.confirm_bad_token_fails"):
        with pytest.raises(UserpassTokenInvalidError):
            await auth.confirm_user("0" * 64, "0" * 24)

    with scenario.step("email.resend_confirmation"):
        before = len(running.mails_for(email))
        await auth.resend_confirmation_email(email)
        mails = running.mails_for(email)
        assert len(mails) == before + 1, "resend queues one more mail"
        assert "confirm" in mails[-1]["kind"]

    with scenario.step("email.confirm_from_outbox"):
        mail = running.mail_for(email, "confirm")
        await auth.confirm_user(mail["token"], mail["tokenId"])

    with scenario.step("email.resend_confirmation_after_confirm_fails"):
        with pytest.raises(UserAlreadyConfirmedError):
            await auth.resend_confirmation_email(email)

    with scenario.step("email.login"):
        user = await app.log_in(Credentials.email_password(email, password))
        assert is_object_id_hex(user.id)
        assert [i.provider_type for i in user.identities] == ["local-userpass"]
        assert user.profile.email == email, "profile data.email"

    with scenario.step("email.wrong_password_fails"):
        with pytest.raises(InvalidPasswordError) as wrong:
            await app.log_in(Credentials.email_password(email, f"{password}-wrong"))
        assert wrong.value.status == 401

    with scenario.step("email.send_reset_email"):
        await auth.send_reset_password_email(email)
        entry = http.last("POST", "/local-userpass/reset/send")
        assert ok_status(entry.status)
        # appusers: provider routes carry no access token (realm-web attaches the current
        # user's, which the server must ignore; test_realm_web.py asserts that half).
        assert entry.has_auth is False

    with scenario.step("email.reset_bad_token_fails"):
        with pytest.raises(UserpassTokenInvalidError):
            await auth.reset_password("1" * 64, "1" * 24, new_password)

    with scenario.step("email.reset_password_from_outbox"):
        mail = running.mail_for(email, "reset")
        await auth.reset_password(mail["token"], mail["tokenId"], new_password)

    with scenario.step("email.reset_token_single_use"):
        mail = running.mail_for(email, "reset")
        with pytest.raises(ServiceError):
            await auth.reset_password(mail["token"], mail["tokenId"], password)

    with scenario.step("email.logout"):
        await user.log_out()
        assert app.current_user is None
        assert user.state is UserState.LOGGED_OUT  # a named user stays known, logged out

    with scenario.step("email.login_new_password"):
        again = await app.log_in(Credentials.email_password(email, new_password))
        assert again.id == user.id, "same user after a password reset"
        await again.log_out()

    with scenario.step("email.login_old_password_fails"):
        with pytest.raises(InvalidPasswordError) as old:
            await app.log_in(Credentials.email_password(email, password))
        assert old.value.status == 401

    third_password = random_password()
    running.record_secret("password", third_password)

    with scenario.step("email.reset_via_function"):
        # reset/call runs the demo reset function with the extra arguments; "success"
        # resets the password at once.
        await auth.call_reset_password_function(email, third_password, "success")
        again = await app.log_in(Credentials.email_password(email, third_password))
        assert again.id == user.id
        await again.log_out()

    with scenario.step("email.reset_function_refusal_fails"):
        with pytest.raises(ServiceError) as refused:
            await auth.call_reset_password_function(email, random_password(), "no")
        assert is_4xx(refused.value)
        # The refused reset changed nothing.
        again = await app.log_in(Credentials.email_password(email, third_password))
        await again.log_out()

    with scenario.step("email.reset_send_unknown_user_fails"):
        with pytest.raises(ServiceUserNotFoundError):
            await auth.send_reset_password_email(unique_email("nobody"))

    scenario.finish(STEPS["email_password"])
    # Registration and the resend mailed confirmations (the resend after confirming was
    # refused), reset/send mailed one reset; reset/call ran the function, no mail.
    assert [m["kind"] for m in running.mails_for(email)] == ["confirm", "confirm", "reset"]
    running.assert_no_plaintext_secrets({"password"})


# --------------------------------------------------------------------------- api_keys.mjs


async def test_api_keys(scenario: Scenario) -> None:
    running = await scenario.start_server()
    app, http = await scenario.make_app(running)
    email = unique_email("keys")
    password = random_password()

    with scenario.step("keys.owner_login"):
        await register_confirmed(app, running, email, password)
        owner = await app.log_in(Credentials.email_password(email, password))
        running.record_secret("password", password)
        running.record_secret("refresh_token", owner.refresh_token)

    with scenario.step("keys.create"):
        created = await owner.api_keys.create("ci-runner")
        assert isinstance(created, ApiKey)
        # The id is a plain 24-hex string (core rejects an {"$oid"} wrapper).
        assert is_object_id_hex(created.id)
        assert created.name == "ci-runner"
        assert created.disabled is False
        assert isinstance(created.key, str) and len(created.key) >= 32, "key should be long and random"
        running.record_secret("api_key", created.key)
        # API key routes go with the refresh token to the non-app-scoped /auth/api_keys.
        entry = http.last("POST", f"{API}/auth/api_keys")
        assert entry.path == f"{API}/auth/api_keys" and entry.has_auth
        assert entry.status in (200, 201)
        assert created.key not in repr(created), "the secret stays out of repr"

    with scenario.step("keys.create_second"):
        other = await owner.api_keys.create("backup")
        assert other.id != created.id
        assert other.key != created.key, "each key is a distinct secret"
        assert other.key is not None
        running.record_secret("api_key", other.key)

    with scenario.step("keys.list"):
        keys = await owner.api_keys.fetch_all()
        by_id = {k.id: k for k in keys}
        assert sorted(by_id) == sorted([created.id, other.id])
        for k in keys:
            assert k.key is None, "list must not return the secret key"
            assert k.disabled is False
        assert by_id[created.id].name == "ci-runner"

    with scenario.step("keys.fetch"):
        assert await owner.api_keys.fetch(created.id) == ApiKey(created.id, "ci-runner", False)

    # Key logins happen on a second "device" so the owner's own session stays untouched.
    key_app, _ = await scenario.make_app(running)

    with scenario.step("keys.login_with_key"):
        key_user = await key_app.log_in(Credentials.api_key(created.key))
        assert key_user.id == owner.id, "a user API key logs in as its owner"
        assert key_user.profile.type == "normal"
        assert await key_user.functions.sum(20, 22) == 42

    with scenario.step("keys.disable"):
        await owner.api_keys.disable(created.id)
        assert (await owner.api_keys.fetch(created.id)).disabled is True

    with scenario.step("keys.login_with_disabled_key_fails"):
        with pytest.raises(ServiceError):
            await key_app.log_in(Credentials.api_key(created.key))

    with scenario.step("keys.other_key_still_works"):
        assert (await key_app.log_in(Credentials.api_key(other.key))).id == owner.id

    with scenario.step("keys.enable"):
        await owner.api_keys.enable(created.id)
        assert (await owner.api_keys.fetch(created.id)).disabled is False
        assert (await key_app.log_in(Credentials.api_key(created.key))).id == owner.id

    with scenario.step("keys.delete"):
        await owner.api_keys.delete(created.id)
        assert [k.id for k in await owner.api_keys.fetch_all()] == [other.id]

    with scenario.step("keys.fetch_deleted_fails"):
        with pytest.raises(APIKeyNotFoundError):
            await owner.api_keys.fetch(created.id)

    with scenario.step("keys.login_with_deleted_key_fails"):
        with pytest.raises(ServiceError):
            await key_app.log_in(Credentials.api_key(created.key))

    with scenario.step("keys.garbage_key_fails"):
        with pytest.raises(ServiceError):
            await key_app.log_in(Credentials.api_key("not-a-real-key"))

    with scenario.step("keys.other_users_key_not_found"):
        # A key id belonging to someone else is "not found" for this user.
        stranger = await key_app.log_in(Credentials.anonymous())
        assert stranger.id != owner.id
        with pytest.raises(APIKeyNotFoundError):
            await stranger.api_keys.fetch(other.id)
        await stranger.log_out()

    scenario.finish(STEPS["api_keys"])
    # create x2, list, fetch, disable+fetch, enable+fetch, delete+list, fetch deleted,
    # the stranger's fetch: every user API-key request reached the server once.
    assert running.count("api_keys") == 12, dict(running.server.stats)
    running.assert_no_plaintext_secrets({"password", "refresh_token", "api_key"})


# --------------------------------------------------------------------------- custom_token.mjs


async def test_custom_token(scenario: Scenario) -> None:
    running = await scenario.start_server()
    # The demo settings' HS256 key (documented in server/example.toml).
    settings = running.server.config.providers.custom_token
    assert settings is not None and settings.algorithm == "HS256"
    secret = settings.key
    app, _ = await scenario.make_app(running)
    subject = f"ext-{secrets.token_hex(4)}"

    def claims() -> dict[str, Any]:
        now = int(time.time())
        return {"sub": subject, "iat": now, "exp": now + 300, "name": "Jay Tee"}

    with scenario.step("jwt.login"):
        user = await app.log_in(Credentials.jwt(sign_jwt(claims(), secret)))
        assert is_object_id_hex(user.id)
        assert [i.provider_type for i in user.identities] == ["custom-token"]

    with scenario.step("jwt.function_call"):
        assert await user.functions.sum(1, 2, 3) == 6

    with scenario.step("jwt.same_subject_same_user"):
        await user.log_out()
        again = await app.log_in(Credentials.jwt(sign_jwt(claims(), secret)))
        assert again.id == user.id, "the same sub must map to the same user"
        assert again is user  # appusers: one User object per user id per App

    with scenario.step("jwt.other_subject_other_user"):
        other = await app.log_in(Credentials.jwt(sign_jwt({**claims(), "sub": f"{subject}-2"}, secret)))
        assert other.id != user.id

    with scenario.step("jwt.wrong_secret_fails"):
        with pytest.raises(ServiceError) as wrong:
            await app.log_in(Credentials.jwt(sign_jwt(claims(), f"{secret}-not")))
        assert is_4xx(wrong.value)

    with scenario.step("jwt.expired_fails"):
        now = int(time.time())
        with pytest.raises(ServiceError) as expired:
            stale = {**claims(), "iat": now - 7200, "exp": now - 3600}
            await app.log_in(Credentials.jwt(sign_jwt(stale, secret)))
        assert is_4xx(expired.value)

    with scenario.step("jwt.alg_none_fails"):
        head, body, _ = sign_jwt(claims(), secret, alg="none").split(".")
        with pytest.raises(ServiceError) as none:
            await app.log_in(Credentials.jwt(f"{head}.{body}."))
        assert is_4xx(none.value)

    with scenario.step("jwt.missing_sub_fails"):
        no_sub = {k: v for k, v in claims().items() if k != "sub"}
        with pytest.raises(ServiceError) as missing:
            await app.log_in(Credentials.jwt(sign_jwt(no_sub, secret)))
        assert is_4xx(missing.value)

    scenario.finish(STEPS["custom_token"])


# --------------------------------------------------------------------------- link_identity.mjs


async def test_link_identity(scenario: Scenario) -> None:
    running = await scenario.start_server()
    app, http = await scenario.make_app(running)
    email = unique_email("link")
    password = random_password()

    with scenario.step("link.anonymous_login"):
        user = await app.log_in(Credentials.anonymous())
        assert [i.provider_type for i in user.identities] == ["anon-user"]
        anonymous_id = user.id

    with scenario.step("link.register_and_confirm"):
        await register_confirmed(app, running, email, password)

    with scenario.step("link.link_email_password"):
        await user.link_credentials(Credentials.email_password(email, password))
        link_request = http.last("POST", "/local-userpass/login")
        assert link_request.query == "?link=true"
        assert link_request.has_auth, "link is sent with the user's access token"
        assert claims_of(user.access_token)["sub"] == user.id, "link returns a token for the same user"
        assert user.id == anonymous_id

    with scenario.step("link.identities_after_link"):
        await user.refresh_profile()
        assert sorted(i.provider_type for i in user.identities) == ["anon-user", "local-userpass"]
        assert user.profile.email == email

    with scenario.step("link.function_call_after_link"):
        me = await user.functions.whoami()
        assert me["id"] == user.id

    with scenario.step("link.login_with_linked_credentials"):
        other_app, _ = await scenario.make_app(running)
        again = await other_app.log_in(Credentials.email_password(email, password))
        assert again.id == user.id, "the linked identity logs in as the original user"
        assert sorted(i.provider_type for i in again.identities) == ["anon-user", "local-userpass"]
        await again.log_out()

    with scenario.step("link.identity_of_another_user_fails"):
        # The email identity now belongs to `user`; linking it to a different user fails.
        third_app, _ = await scenario.make_app(running)
        stranger = await third_app.log_in(Credentials.anonymous())
        with pytest.raises(ServiceError) as refused:
            await stranger.link_credentials(Credentials.email_password(email, password))
        assert is_4xx(refused.value)
        assert [i.provider_type for i in stranger.identities] == ["anon-user"]

    scenario.finish(STEPS["link_identity"])


# --------------------------------------------------------------------------- refresh.mjs


async def test_refresh_after_forced_401(scenario: Scenario) -> None:
    running = await scenario.start_server()
    server = running.server
    app, http = await scenario.make_app(running)

    def function_calls() -> list[Exchange]:
        return http.matching("POST", "/functions/call")

    with scenario.step("refresh.login"):
        user = await app.log_in(Credentials.anonymous())
        assert await user.functions.sum(1, 1) == 2

    with scenario.step("refresh.revoke_then_call"):
        refresh_stat_before = running.count("refresh")
        refreshes_before = http.count("POST", "/auth/session")
        calls_before = len(function_calls())
        old_access = user.access_token
        await server.revoke_access_tokens(user.id)

        assert await user.functions.sum(40, 2) == 42, "the call succeeds after a transparent refresh"

        calls = function_calls()[calls_before:]
        assert [e.status for e in calls] == [401, 200], "one 401 then one successful retry"
        assert http.count("POST", "/auth/session") - refreshes_before == 1, "one refresh request"
        assert running.count("refresh") - refresh_stat_before == 1, "server counted one refresh"
        assert user.access_token != old_access, "a new access token was stored"
        assert user.state is UserState.LOGGED_IN

    with scenario.step("refresh.refresh_token_not_rotated"):
        # POST /auth/session returns only an access token; the refresh token stays the same.
        refresh_before = user.refresh_token
        await user.refresh_access_token()
        assert user.refresh_token == refresh_before, "the refresh token is unchanged"

    with scenario.step("refresh.concurrent_calls_after_revoke"):
        refreshes_before = http.count("POST", "/auth/session")
        await server.revoke_access_tokens(user.id)
        results = await asyncio.gather(*(user.functions.sum(i, 1) for i in range(8)))
        assert results == [1, 2, 3, 4, 5, 6, 7, 8]
        storm = http.count("POST", "/auth/session") - refreshes_before
        # appusers: concurrent 401s share one in-flight refresh (single flight), where
        # realm-web refreshes once per call (1..8).
        assert storm == 1, f"refreshes: {storm}"

    with scenario.step("refresh.server_error_keeps_user"):
        await server.revoke_access_tokens(user.id)
        injected = {"error": "injected", "error_code": "InternalServerError"}
        server.inject_fault("refresh", 500, injected, times=1)
        with pytest.raises(ServiceError) as failed:
            await user.functions.sum(1, 2)
        assert failed.value.status == 500
        assert user.state is UserState.LOGGED_IN, "a 5xx refresh must not log the user out"
        # The fault is spent: the next call refreshes for real and succeeds.
        assert await user.functions.sum(1, 2) == 3

    with scenario.step("refresh.revoked_session_logs_out"):
        await server.revoke_sessions(user.id)
        await server.revoke_access_tokens(user.id)
        with pytest.raises(RefreshTokenRejectedError) as rejected:
            await user.functions.sum(1, 2)
        assert rejected.value.status == 401 and rejected.value.error_code == "InvalidSession"
        assert user.refresh_token is None, "the refresh token was cleared"
        # appusers: an anonymous user whose refresh token is refused is removed (it could
        # never log back in); realm-web reports "logged-out".
        assert user.state is UserState.REMOVED
        assert app.all_users == {}

    scenario.finish(STEPS["refresh"])
    # Refreshes seen by the server over the whole run: the forced one, the explicit one,
    # the concurrent storm, the injected 500, its successful retry and the refused one at
    # the end. Client and server counts agree.
    assert running.count("refresh") == 5 + storm == http.count("POST", "/auth/session")


# --------------------------------------------------------------------------- delete_user.mjs


async def test_delete_user(scenario: Scenario) -> None:
    running = await scenario.start_server()
    app, http = await scenario.make_app(running)
    email = unique_email("del")
    password = random_password()

    with scenario.step("delete.register_login"):
        await register_confirmed(app, running, email, password)
        user = await app.log_in(Credentials.email_password(email, password))
        first_id = user.id

    with scenario.step("delete.logout"):
        refresh = user.refresh_token
        await user.log_out()
        assert user.state is UserState.LOGGED_OUT
        assert app.current_user is None
        # The server revoked the session: the old refresh token no longer refreshes.
        status, body = await http.raw("POST", running.url("/auth/session"), bearer=refresh)
        assert status == 401
        assert body["error_code"] == "InvalidSession"

    with scenario.step("delete.logout_twice_is_harmless"):
        # appusers: a second log_out of a logged-out user is a no-op, nothing is sent.
        sent = len(http.log)
        await user.log_out()
        assert len(http.log) == sent
        # DELETE /auth/session with an unknown token: 401 "failed to find refresh token"
        # (which appusers' own log-out treats as already revoked).
        status, body = await http.raw("DELETE", running.url("/auth/session"), bearer="unknown-refresh-token")
        assert status == 401
        assert body["error_code"] == "InvalidSession"
        assert "failed to find refresh token" in body["error"]

    with scenario.step("delete.login_again"):
        again = await app.log_in(Credentials.email_password(email, password))
        assert again is user and user.id == first_id
        assert app.current_user is again

    with scenario.step("delete.delete_user"):
        access = user.access_token
        await app.delete_user(user)
        assert ok_status(http.last("DELETE", "/auth/delete").status)
        assert user.state is UserState.REMOVED
        assert app.current_user is None
        assert app.all_users == {}
        # The deleted user's access token is dead too.
        status, _ = await http.raw("GET", running.url("/auth/profile"), bearer=access)
        assert status == 401

    with scenario.step("delete.login_after_delete_fails"):
        with pytest.raises(InvalidPasswordError) as refused:
            await app.log_in(Credentials.email_password(email, password))
        assert refused.value.status == 401

    with scenario.step("delete.register_again_is_new_user"):
        # The email is free again; a new registration makes a new user.
        await register_confirmed(app, running, email, password)
        fresh = await app.log_in(Credentials.email_password(email, password))
        assert fresh.id != first_id

    scenario.finish(STEPS["delete_user"])


# --------------------------------------------------------------------------- mongodb.mjs


async def test_mongodb(scenario: Scenario) -> None:
    running = await scenario.start_server(MONGODB_CONFIG)
    app, http = await scenario.make_app(running)
    user = await app.log_in(Credentials.anonymous())
    mongo = user.mongo_client("mongodb-atlas")
    collection_name = MONGODB_COLLECTION
    items = mongo.db("interop").collection(collection_name)
    created = dt.datetime(2024, 1, 31, 12, 0, 0, 123000, tzinfo=dt.UTC)

    with scenario.step("mongo.insertOne"):
        result = await items.insert_one(
            {"name": "apple", "qty": 5, "price": Decimal128("1.25"), "created": created}
        )
        assert isinstance(result.inserted_id, ObjectId), "a generated _id comes back as an ObjectId"
        first_id = result.inserted_id

    with scenario.step("mongo.insertOne_with_id"):
        result = await items.insert_one({"_id": "custom-id", "name": "kiwi", "qty": 1})
        assert result.inserted_id == "custom-id", "a caller-chosen _id keeps its type"

    with scenario.step("mongo.insertMany"):
        many = await items.insert_many([
            {"name": "banana", "qty": 12, "tags": ["yellow"]},
            {"name": "cherry", "qty": 40, "tags": ["red", "small"]},
            {"name": "date", "qty": 7},
        ])
        assert len(many.inserted_ids) == 3
        assert all(isinstance(i, ObjectId) for i in many.inserted_ids)

    with scenario.step("mongo.find_filter_projection_sort_limit"):
        docs = await items.find(
            {"qty": {"$gte": 5}}, projection={"_id": 0, "name": 1, "qty": 1}, sort={"qty": -1}, limit=3
        )
        assert docs == [
            {"name": "cherry", "qty": 40},
            {"name": "banana", "qty": 12},
            {"name": "date", "qty": 7},
        ]
        assert http.last("POST", "/functions/call").content_type == "application/json"

    with scenario.step("mongo.find_all_types_roundtrip"):
        docs = await items.find({"_id": first_id})
        assert len(docs) == 1
        [doc] = docs
        assert isinstance(doc["_id"], ObjectId) and doc["_id"] == first_id
        assert isinstance(doc["created"], dt.datetime), "dates come back as datetime"
        assert doc["created"] == created, "millisecond precision is kept"
        assert isinstance(doc["price"], Decimal128), "Decimal128 comes back as Decimal128"
        assert str(doc["price"]) == "1.25"

    with scenario.step("mongo.findOne"):
        doc = await items.find_one({"name": "banana"}, projection={"_id": 0, "name": 1, "tags": 1})
        assert doc == {"name": "banana", "tags": ["yellow"]}
        first = await items.find_one({}, sort={"qty": 1}, projection={"_id": 0, "name": 1})
        assert first == {"name": "kiwi"}
        assert await items.find_one({"name": "durian"}) is None

    with scenario.step("mongo.count"):
        assert await items.count() == 5
        assert await items.count({"qty": {"$lt": 10}}) == 3
        assert await items.count({}, limit=2) == 2

    with scenario.step("mongo.updateOne"):
        updated = await items.update_one({"name": "apple"}, {"$inc": {"qty": 1}, "$set": {"ripe": True}})
        assert updated == UpdateResult(matched_count=1, modified_count=1)
        doc = await items.find_one({"name": "apple"})
        assert doc is not None and doc["qty"] == 6 and doc["ripe"] is True
        none = await items.update_one({"name": "nothing"}, {"$set": {"x": 1}})
        assert none == UpdateResult(matched_count=0, modified_count=0)

    with scenario.step("mongo.updateOne_upsert"):
        upserted = await items.update_one({"name": "fig"}, {"$set": {"qty": 3}}, upsert=True)
        assert (upserted.matched_count, upserted.modified_count) == (0, 0)
        assert isinstance(upserted.upserted_id, ObjectId), "upserted_id is the new document's ObjectId"
        doc = await items.find_one({"_id": upserted.upserted_id})
        assert doc is not None and doc["name"] == "fig" and doc["qty"] == 3

    with scenario.step("mongo.updateMany"):
        updated = await items.update_many({"qty": {"$lt": 10}}, {"$set": {"low": True}})
        # apple(6), kiwi(1), date(7), fig(3)
        assert updated == UpdateResult(matched_count=4, modified_count=4)
        assert await items.count({"low": True}) == 4

    with scenario.step("mongo.updateMany_upsert"):
        upserted = await items.update_many({"name": "grape"}, {"$set": {"qty": 50}}, upsert=True)
        assert upserted.matched_count == 0
        assert isinstance(upserted.upserted_id, ObjectId)
        assert await items.count({"name": "grape"}) == 1

    with scenario.step("mongo.aggregate"):
        grouped = await items.aggregate([
            {"$match": {"qty": {"$gte": 5}}},
            {"$group": {"_id": "$low", "total": {"$sum": "$qty"}, "n": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
        ])
        # qty >= 5: apple 6 and date 7 are `low`; banana 12, cherry 40, grape 50 have no
        # `low` field (grouped under null, which sorts before true).
        assert grouped == [{"_id": None, "total": 102, "n": 3}, {"_id": True, "total": 13, "n": 2}]

    with scenario.step("mongo.findOneAndUpdate"):
        before = await items.find_one_and_update(
            {"name": "banana"}, {"$inc": {"qty": 3}}, projection={"_id": 0, "qty": 1}
        )
        assert before == {"qty": 12}, "returns the pre-image by default"
        after = await items.find_one_and_update(
            {"name": "banana"},
            {"$inc": {"qty": 3}},
            return_new_document=True,
            projection={"_id": 0, "qty": 1},
        )
        assert after == {"qty": 18}, "return_new_document gives the post-image"
        created_doc = await items.find_one_and_update(
            {"name": "honeydew"}, {"$set": {"qty": 2}}, upsert=True, return_new_document=True
        )
        assert created_doc is not None and created_doc["name"] == "honeydew"
        assert isinstance(created_doc["_id"], ObjectId)
        assert await items.find_one_and_update({"name": "nothing"}, {"$set": {"qty": 1}}) is None

    with scenario.step("mongo.findOneAndReplace"):
        replaced = await items.find_one_and_replace(
            {"name": "date"}, {"name": "date", "qty": 70, "replaced": True}
        )
        assert replaced is not None and replaced["qty"] == 7
        assert "replaced" not in replaced
        after = await items.find_one({"name": "date"}, projection={"_id": 0})
        assert after == {"name": "date", "qty": 70, "replaced": True}, "replacement drops the old fields"
        returned = await items.find_one_and_replace(
            {"name": "date"}, {"name": "date", "qty": 71}, return_new_document=True, projection={"_id": 0}
        )
        assert returned == {"name": "date", "qty": 71}

    with scenario.step("mongo.findOneAndDelete"):
        count_before = await items.count()
        deleted = await items.find_one_and_delete({"name": "kiwi"})
        assert deleted is not None and deleted["name"] == "kiwi", "returns the deleted document"
        # appusers: sent under its own name (realm-web 2.0.1 sends findOneAndReplace
        # without an `update`, which the server also accepts, spec §11.1).
        assert http.last("POST", "/functions/call").request_json()["name"] == "findOneAndDelete"
        assert await items.count() == count_before - 1
        assert await items.find_one({"name": "kiwi"}) is None
        sorted_delete = await items.find_one_and_delete(
            {"low": True}, sort={"qty": -1}, projection={"_id": 0, "name": 1}
        )
        # `low` is left on apple (6) and fig (3): the replacement above dropped date's.
        assert sorted_delete == {"name": "apple"}, "sort picks which document is deleted"

    with scenario.step("mongo.deleteOne"):
        assert await items.delete_one({"name": "fig"}) == DeleteResult(deleted_count=1)
        assert await items.delete_one({"name": "fig"}) == DeleteResult(deleted_count=0)

    with scenario.step("mongo.deleteMany"):
        remaining = await items.count()
        assert await items.delete_many({"qty": {"$gte": 0}}) == DeleteResult(deleted_count=remaining)
        assert await items.count() == 0

    # -- watch ---------------------------------------------------------------------------
    # appusers: entering `async with collection.watch()` returns once the server has
    # answered the streaming GET, so no wait on the HTTP log is needed before writing.

    with scenario.step("mongo.watch_insert"):
        async with items.watch() as stream:
            stream_entry = http.log[-1]
            assert stream_entry.streamed and stream_entry.method == "GET"
            assert stream_entry.path.endswith("/functions/call")
            assert stream_entry.query.startswith("?baas_request=")
            # appusers: the access token goes in the Authorization header, never the URL.
            assert stream_entry.has_auth and "baas_at" not in stream_entry.query
            assert stream_entry.content_type is not None
            assert stream_entry.content_type.startswith("text/event-stream")
            inserted = (await items.insert_one({"name": "watched", "qty": 1, "at": created})).inserted_id
            event = await next_event(stream)
        assert stream.closed
        assert event.operation_type == "insert"
        assert event.document_id == inserted
        assert event.full_document is not None
        assert event.full_document["_id"] == inserted
        assert event.full_document["name"] == "watched"
        assert event.full_document["at"] == created and isinstance(event.full_document["at"], dt.datetime)
        assert event.namespace == {"db": "interop", "coll": collection_name}

    with scenario.step("mongo.watch_ids_update_delete"):
        tracked = (await items.insert_one({"name": "tracked", "qty": 1})).inserted_id
        await items.insert_one({"name": "untracked", "qty": 1})
        async with items.watch(ids=[tracked]) as stream:
            # A change to another document must not show up on this stream.
            await items.update_one({"name": "untracked"}, {"$set": {"qty": 2}})
            await items.update_one({"_id": tracked}, {"$set": {"qty": 2, "note": "100% done\nreally"}})
            update = await next_event(stream)
            assert update.operation_type == "update"
            assert update.document_id == tracked
            # The % and newline survive the server's SSE escaping.
            assert update.update_description is not None
            assert update.update_description["updatedFields"] == {"qty": 2, "note": "100% done\nreally"}
            await items.delete_one({"_id": tracked})
            deleted_event = await next_event(stream)
            assert deleted_event.operation_type == "delete"
            assert deleted_event.document_id == tracked

    with scenario.step("mongo.watch_filter"):
        async with items.watch(filter={"operationType": "insert", "fullDocument.tag": "wanted"}) as stream:
            await items.insert_one({"name": "noise", "tag": "other"})
            await items.insert_one({"name": "signal", "tag": "wanted"})
            event = await next_event(stream)
            assert event.full_document is not None and event.full_document["name"] == "signal"

    with scenario.step("mongo.bad_operator_fails"):
        with pytest.raises(ServiceError) as bad:
            await items.update_one({}, {"$notAnOperator": {"a": 1}})
        assert is_4xx(bad.value)

    with scenario.step("mongo.unknown_service_fails"):
        with pytest.raises(ServiceError) as unknown:
            await user.mongo_client("no-such-service").db("interop").collection("x").find_one({})
        assert is_4xx(unknown.value)

    scenario.finish(STEPS["mongodb"])
    # Three streams were opened, one per watch step.
    assert running.count("stream") == 3, dict(running.server.stats)


# --------------------------------------------------------------------------- profile.mjs

async def test_profile_fields(scenario: Scenario) -> None:
    secret = secrets.token_urlsafe(32)
    server_key = secrets.token_urlsafe(32)
    audience = "interop-audience"
    running = await scenario.start_server(
        PROFILE_CONFIG.format(secret=secret, audience=audience, server_key=server_key)
    )
    assert running.server.app_id == "interop-profile"
    app, _ = await scenario.make_app(running)
    now = int(time.time())
    claims = {
        "sub": f"profile-{secrets.token_hex(4)}",
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "picture": "https://example.com/ada.png",
        "details": {"gender": "female", "birthday": "1815-12-10", "min_age": "18", "max_age": "99"},
        "department": "engines",
    }

    with scenario.step("profile.jwt_metadata_fields"):
        user = await app.log_in(Credentials.jwt(sign_jwt(claims, secret)))
        profile = user.profile
        # appusers keeps the server's keys in `data` and reads the standard ones through
        # properties (realm-web renames them to camelCase: firstName, pictureUrl...).
        assert dict(profile.data) == {
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "picture": "https://example.com/ada.png",
            "gender": "female",
            "birthday": "1815-12-10",
            "min_age": "18",
            "max_age": "99",
            "department": "engines",
        }
        assert (profile.name, profile.email, profile.first_name, profile.last_name) == (
            "Ada Lovelace", "ada@example.com", "Ada", "Lovelace",
        )
        assert profile.picture_url == "https://example.com/ada.png"
        assert (profile.gender, profile.birthday, profile.min_age, profile.max_age) == (
            "female", "1815-12-10", "18", "99",
        )
        assert profile.type == "normal"
        assert user.identities == (Identity(claims["sub"], "custom-token"),)

    with scenario.step("profile.jwt_required_field_missing_fails"):
        rest = {k: v for k, v in claims.items() if k != "department"}
        with pytest.raises(ServiceError) as missing:
            await app.log_in(Credentials.jwt(sign_jwt(rest, secret)))
        assert is_4xx(missing.value)

    with scenario.step("profile.jwt_wrong_audience_fails"):
        with pytest.raises(ServiceError) as wrong:
            await app.log_in(Credentials.jwt(sign_jwt({**claims, "aud": "someone-else"}, secret)))
        assert is_4xx(wrong.value)

    with scenario.step("profile.email_password"):
        email = unique_email("prof")
        password = random_password()
        await register_confirmed(app, running, email, password)
        user = await app.log_in(Credentials.email_password(email, password))
        assert user.profile.email == email
        assert user.identities[0].provider_type == "local-userpass"
        assert user.profile.type == "normal"

    with scenario.step("profile.anonymous"):
        user = await app.log_in(Credentials.anonymous())
        assert user.profile.email is None
        assert [i.provider_type for i in user.identities] == ["anon-user"]

    with scenario.step("profile.refresh_profile"):
        # refresh_profile() re-reads GET /auth/profile for the current user.
        current = app.current_user
        assert current is user
        await current.refresh_profile()
        assert [i.provider_type for i in current.identities] == ["anon-user"]

    with scenario.step("profile.server_api_key"):
        # Server API keys log in through the same api-key provider; only the type differs.
        server_user = await app.log_in(Credentials.api_key(server_key))
        assert server_user.profile.type == "server"
        assert server_user.identities[0].provider_type == "api-key"
        other_app, _ = await scenario.make_app(running)
        again = await other_app.log_in(Credentials.api_key(server_key))
        assert again.id == server_user.id, "a server key always logs in the same user"

    scenario.finish(STEPS["profile"])


# --------------------------------------------------------------------------- custom_function.mjs


async def test_custom_function(scenario: Scenario) -> None:
    running = await scenario.start_server()
    app, http = await scenario.make_app(running)
    username = f"fn-{secrets.token_hex(4)}"

    with scenario.step("function.login"):
        # Extra typed fields travel as canonical EJSON; the server must accept them.
        user = await app.log_in(Credentials.function({
            "username": username, "pin": 1234, "device": ObjectId(), "when": dt.datetime.now(dt.UTC),
        }))
        assert is_object_id_hex(user.id)
        assert user.identities == (Identity(username, "custom-function"),)
        assert http.last("POST", "/auth/providers/custom-function/login").status == 200

    with scenario.step("function.whoami"):
        me = await user.functions.whoami()
        assert me["id"] == user.id
        assert [(i["id"], i["provider_type"]) for i in me["identities"]] == [(username, "custom-function")]

    with scenario.step("function.same_payload_same_user"):
        other_app, _ = await scenario.make_app(running)
        again = await other_app.log_in(Credentials.function({"username": username}))
        assert again.id == user.id

    with scenario.step("function.other_payload_other_user"):
        other = await app.log_in(Credentials.function({"username": f"{username}-2"}))
        assert other.id != user.id

    with scenario.step("function.rejected_payload_fails"):
        with pytest.raises(ServiceError) as rejected:
            await app.log_in(Credentials.function({"username": username, "reject": True}))
        assert rejected.value.status == 401

    with scenario.step("function.invalid_payload_fails"):
        with pytest.raises(ServiceError) as invalid:
            await app.log_in(Credentials.function({"nickname": "no username"}))
        assert invalid.value.status == 401

    scenario.finish(STEPS["custom_function"])


# --------------------------------------------------------------------------- bson_types.mjs

BIG_LONG = 2**53 + 1  # not representable as a double
INT64_MIN = -(2**63)


def canonical(text: bytes) -> Any:
    """A response body parsed as canonical EJSON (``EJSON.parse(text, {relaxed: false})``)."""
    return json_util.loads(text, json_options=json_util.CANONICAL_JSON_OPTIONS)


async def test_bson_types_through_echo(scenario: Scenario) -> None:
    running = await scenario.start_server()
    app, http = await scenario.make_app(running)
    user = await app.log_in(Credentials.anonymous())

    oid = ObjectId()
    date = dt.datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=dt.UTC)
    decimal = Decimal128("1234567890.123456789012345678901234")
    big_long = Int64(BIG_LONG)
    neg_long = Int64(INT64_MIN)
    small_long = Int64(42)
    a_uuid = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")

    def last_call() -> Exchange:
        return http.last("POST", "/functions/call")

    with scenario.step("bson.request_is_canonical"):
        # appusers: checked on the request it really sent (realm-web's script checks what
        # its serializer would produce).
        await user.functions.echo(oid, date, decimal, big_long, 5, 2.5)
        arguments = last_call().request_json()["arguments"]
        assert arguments[0] == {"$oid": str(oid)}
        assert arguments[1] == {"$date": {"$numberLong": str(int(date.timestamp() * 1000))}}
        assert arguments[2] == {"$numberDecimal": str(decimal)}
        assert arguments[3] == {"$numberLong": "9007199254740993"}
        assert arguments[4] == {"$numberInt": "5"}
        assert arguments[5] == {"$numberDouble": "2.5"}

    with scenario.step("bson.echo_call"):
        result = await user.functions.echo(
            oid, date, decimal, big_long, small_long, neg_long, 5, 2.5, "text", True, None
        )
        assert isinstance(result, list), "echo returns its arguments as a list"
        assert len(result) == 11
        assert last_call().content_type == "application/json"

    with scenario.step("bson.objectid"):
        assert isinstance(result[0], ObjectId) and result[0] == oid

    with scenario.step("bson.date"):
        assert isinstance(result[1], dt.datetime) and result[1].utcoffset() == dt.timedelta(0)
        assert result[1] == date, "millisecond precision is kept"

    with scenario.step("bson.decimal128"):
        assert isinstance(result[2], Decimal128)
        assert str(result[2]) == str(decimal)

    with scenario.step("bson.long_as_realm_web_decodes_it"):
        # appusers: int64 decodes to bson's Int64 exactly (realm-web decodes it relaxed, to
        # the nearest double); int32 to int, double to float.
        assert type(result[3]) is Int64 and result[3] == BIG_LONG
        assert type(result[4]) is Int64 and result[4] == 42
        assert type(result[5]) is Int64 and result[5] == INT64_MIN
        assert type(result[6]) is int and result[6] == 5
        assert type(result[7]) is float and result[7] == 2.5
        assert result[8:] == ["text", True, None]

    with scenario.step("bson.long_exact_on_the_wire"):
        body = last_call().body
        assert body is not None
        wire = canonical(body)
        assert type(wire[3]) is Int64 and wire[3] == BIG_LONG, "2^53+1 must survive exactly"
        assert type(wire[4]) is Int64 and wire[4] == 42, "a small int64 stays int64, not int32"
        assert type(wire[5]) is Int64 and wire[5] == INT64_MIN, "int64 minimum survives"
        assert type(wire[6]) is int, "an int32 stays int32"
        assert type(wire[7]) is float, "a double stays double"
        assert wire[0] == oid
        assert wire[2] == decimal
        # Dates: canonical {"$date": {"$numberLong": ...}} (what core-based clients need).
        plain = last_call().json()
        assert plain[1] == {"$date": {"$numberLong": str(int(date.timestamp() * 1000))}}
        assert plain[3] == {"$numberLong": "9007199254740993"}

    with scenario.step("bson.nested_document"):
        doc = {
            "id": oid,
            "when": {"at": date, "history": [date, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)]},
            "amounts": [decimal, big_long, 7],
            "uuid": a_uuid,
            "bytes": Binary(bytes([0, 1, 2, 250]), 0),
            "text": "100% done\nnext",
        }
        [back] = await user.functions.echo(doc)
        assert isinstance(back["id"], ObjectId) and back["id"] == oid
        assert back["when"]["at"] == date
        assert back["when"]["history"] == [date, dt.datetime(1970, 1, 1, tzinfo=dt.UTC)]
        assert isinstance(back["amounts"][0], Decimal128) and back["amounts"][0] == decimal
        assert type(back["amounts"][1]) is Int64 and back["amounts"][1] == BIG_LONG, "nested int64 exact"
        assert back["amounts"][2] == 7
        assert back["text"] == "100% done\nnext"
        # appusers: binary subtype 4 decodes to uuid.UUID (the standard representation),
        # subtype 0 to bytes; realm-web gives Binary objects for both.
        assert back["uuid"] == a_uuid and isinstance(back["uuid"], uuid.UUID)
        assert back["bytes"] == bytes([0, 1, 2, 250])
        [wire_doc] = last_call().json()
        assert wire_doc["uuid"]["$binary"]["subType"] == "04"
        assert wire_doc["amounts"][1] == {"$numberLong": "9007199254740993"}

    with scenario.step("bson.sum_mixed_numbers"):
        # int32 + double + int64 arguments are numbers to the server.
        assert await user.functions.sum(2, 2.5, Int64(10)) == 14.5

    scenario.finish(STEPS["bson_types"])


# --------------------------------------------------------------------------- custom_data.mjs


async def test_custom_user_data(scenario: Scenario) -> None:
    running = await scenario.start_server()
    app, _ = await scenario.make_app(running)
    since = dt.datetime(2024, 1, 31, 12, 0, tzinfo=dt.UTC)

    with scenario.step("custom_data.initially_empty"):
        user = await app.log_in(Credentials.anonymous())
        assert user.custom_data == {}, "no custom-data document yet -> {}"

    with scenario.step("custom_data.set_via_function"):
        stored = await user.functions.set_custom_data({"plan": "pro", "credits": 5, "since": since})
        assert stored["plan"] == "pro"
        assert stored["user_id"] == user.id
        # The access token in hand predates the write: nothing changes until a refresh.
        assert user.custom_data == {}

    with scenario.step("custom_data.refresh"):
        data = await user.refresh_custom_data()
        assert data["plan"] == "pro"
        assert data["credits"] == 5
        assert data["user_id"] == user.id
        # appusers: the claim is EJSON-decoded, so the date is a datetime (realm-web hands
        # over the raw {"$date": ...} wrapper).
        assert data["since"] == since and isinstance(data["since"], dt.datetime)
        assert user.custom_data == data

    with scenario.step("custom_data.whoami_sees_it"):
        me = await user.functions.whoami()
        assert me["custom_data"]["plan"] == "pro"

    with scenario.step("custom_data.merge"):
        await user.functions.set_custom_data({"credits": 6})
        data = await user.refresh_custom_data()
        assert data["plan"] == "pro", "fields not named are kept"
        assert data["credits"] == 6

    with scenario.step("custom_data.write_through_mongo"):
        collection = user.mongo_client("mongodb-atlas").db("appusers").collection("custom_data")
        result = await collection.update_one({"user_id": user.id}, {"$set": {"plan": "team"}})
        assert result.matched_count == 1
        data = await user.refresh_custom_data()
        assert data["plan"] == "team", "user_data is built from the current document at issue time"

    with scenario.step("custom_data.other_user_isolated"):
        other_app, _ = await scenario.make_app(running)
        stranger = await other_app.log_in(Credentials.anonymous())
        assert stranger.custom_data == {}
        assert await stranger.refresh_custom_data() == {}

    with scenario.step("custom_data.numbers_are_plain_json"):
        # appusers decodes either form to int; the claim itself (what realm-web users get
        # as is) carries the number as plain JSON.
        assert type(user.custom_data["credits"]) is int and user.custom_data["credits"] == 6
        claim = claims_of(user.access_token)["user_data"]
        assert type(claim["credits"]) is int, f"credits arrived as {claim['credits']!r}"

    scenario.finish(STEPS["custom_data"])
    # Three explicit refreshes by the first user and one by the second.
    assert running.count("refresh") == 4, dict(running.server.stats)

