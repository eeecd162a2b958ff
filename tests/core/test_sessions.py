"""Sessions end to end against the local server on 127.0.0.1: log-in, refresh, log-out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appusers import (
    AccessTokenRefreshed,
    App,
    Credentials,
    LoggedIn,
    LoggedOut,
    LogoutCause,
    RetryPolicy,
    UserState,
)
from appusers.adapters import AiohttpTransport, FileStorage
from appusers.errors import (
    HTTPStatusError,
    InvalidPasswordError,
    RefreshTokenRejectedError,
    ServiceError,
    TransportError,
    UserNotLoggedInError,
)
from appusers.transport import Request, Response

from ._helpers import HookTransport, email_user, register_confirmed


async def test_login_call_forced_401_refresh_retry_logout_in_order(app, server):
    user = await email_user(app, server, "ana@example.com")
    events: list[object] = []
    states: list[UserState] = []
    user.events.subscribe(events.append)
    user.state_changes.subscribe(states.append)

    assert await user.functions.sum(2, 3) == 5
    refreshes = server.stats["refresh"]
    await server.revoke_access_tokens(user.id)
    assert await user.call_function("sum", 1, 1) == 2  # 401 -> refresh -> retry
    assert server.stats["refresh"] == refreshes + 1
    await user.log_out()

    assert [type(e) for e in events] == [AccessTokenRefreshed, LoggedOut]
    assert events[-1] == LoggedOut(user.id, LogoutCause.USER_REQUEST, UserState.LOGGED_OUT)
    assert states == [UserState.LOGGED_IN, UserState.LOGGED_OUT]
    assert user.access_token is None and user.refresh_token is None
    assert app.current_user is None
    assert server.stats["logout"] == 1


async def test_login_again_reuses_the_same_user_object(app, server):
    first = await email_user(app, server, "bo@example.com")
    seen: list[object] = []
    first.events.subscribe(seen.append)
    await first.log_out()
    again = await app.log_in(Credentials.email_password("bo@example.com", "s3cret-pass"))
    assert again is first
    assert again.state is UserState.LOGGED_IN
    assert [type(e) for e in seen] == [LoggedOut, LoggedIn]


async def test_200_concurrent_calls_with_revoked_token_share_one_refresh(app, server):
    user = await app.log_in(Credentials.anonymous())
    await server.revoke_access_tokens(user.id)
    before = server.stats["refresh"]
    results = await asyncio.gather(*(user.functions.sum(i, 1) for i in range(200)))
    assert results == [i + 1 for i in range(200)]
    assert server.stats["refresh"] - before == 1


async def test_refresh_rejected_logs_out_with_cause_and_wipes_the_file(make_app, server, tmp_path):
    path = tmp_path / "session.json"
    app = await make_app(storage=FileStorage(path))
    user = await email_user(app, server, "cy@example.com")
    access, refresh = user.access_token, user.refresh_token
    assert access in path.read_text() and refresh in path.read_text()
    events: list[object] = []
    user.events.subscribe(events.append)

    await server.revoke_sessions(user.id)
    await server.revoke_access_tokens(user.id)
    with pytest.raises(RefreshTokenRejectedError):
        await user.functions.sum(1, 2)

    assert user.state is UserState.LOGGED_OUT
    assert events == [LoggedOut(user.id, LogoutCause.REFRESH_TOKEN_REJECTED, UserState.LOGGED_OUT)]
    text = path.read_text()
    assert access not in text and refresh not in text
    assert user.access_token is None and user.refresh_token is None
    assert app.current_user is None


async def test_anonymous_user_with_rejected_refresh_is_removed(app, server):
    user = await app.log_in(Credentials.anonymous())
    await server.revoke_sessions(user.id)
    with pytest.raises(RefreshTokenRejectedError):
        await user.refresh_custom_data()
    assert user.state is UserState.REMOVED
    assert user.id not in app.all_users


async def test_refresh_failing_with_5xx_keeps_the_user_logged_in(app, server):
    app.retry = RetryPolicy.none()  # one failed refresh, not the retries (tests/core/test_connectivity.py)
    user = await app.log_in(Credentials.anonymous())
    token = user.access_token
    server.inject_fault("refresh", 503, None, times=1)
    with pytest.raises(HTTPStatusError) as info:
        await user.refresh_access_token()
    assert info.value.status == 503
    assert user.state is UserState.LOGGED_IN and user.access_token == token
    await user.refresh_access_token()  # the next try works
    assert user.access_token != token


async def test_refresh_failing_on_the_network_keeps_the_user_logged_in(server):
    failing = {"on": False}

    async def hook(request: Request) -> Response | None:
        if failing["on"] and request.url.endswith("/auth/session"):
            raise TransportError("connection reset (simulated)", method=request.method, url=request.url)
        return None

    async with App(server.app_id, base_url=server.url,
                   transport=HookTransport(AiohttpTransport(), hook)) as app:
        user = await app.log_in(Credentials.anonymous())
        failing["on"] = True
        with pytest.raises(TransportError):
            await user.refresh_access_token()
        assert user.is_logged_in and user.refresh_token is not None


async def test_logout_racing_a_refresh_is_not_undone(server):
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def hook(request: Request) -> Response | None:
        if request.method == "POST" and request.url.endswith("/auth/session"):
            entered.set()
            await gate.wait()
        return None

    async with App(server.app_id, base_url=server.url,
                   transport=HookTransport(AiohttpTransport(), hook)) as app:
        user = await email_user(app, server, "dee@example.com")
        refresh = asyncio.ensure_future(user.refresh_access_token())
        await entered.wait()
        await user.log_out()
        gate.set()
        with pytest.raises(UserNotLoggedInError):
            await refresh
        assert user.state is UserState.LOGGED_OUT
        assert user.access_token is None and user.refresh_token is None


async def test_logout_offline_wipes_local_tokens_and_reports_failure(server, tmp_path):
    path = tmp_path / "s.json"
    offline = {"on": False}

    async def hook(request: Request) -> Response | None:
        if offline["on"]:
            raise TransportError("network unreachable (simulated)", method=request.method, url=request.url)
        return None

    async with App(server.app_id, base_url=server.url, storage=FileStorage(path),
                   transport=HookTransport(AiohttpTransport(), hook)) as app:
        user = await email_user(app, server, "eve@example.com")
        refresh = user.refresh_token
        offline["on"] = True
        with pytest.raises(TransportError):
            await user.log_out()
        assert user.state is UserState.LOGGED_OUT
        assert refresh not in path.read_text()


async def test_failed_login_persists_nothing(make_app, server, tmp_path):
    path = tmp_path / "s.json"
    app = await make_app(storage=FileStorage(path))
    await register_confirmed(app, server, "fay@example.com")
    with pytest.raises(InvalidPasswordError):
        await app.log_in(Credentials.email_password("fay@example.com", "wrong-password"))
    assert app.all_users == {}
    assert not path.exists() or "fay" not in path.read_text()


async def test_profile_failure_after_login_commits_nothing(make_app, server):
    app = await make_app()
    server.inject_fault("profile", 500, {"error": "boom", "error_code": "InternalServerError"}, times=1)
    with pytest.raises(ServiceError):
        await app.log_in(Credentials.anonymous())
    assert app.all_users == {} and app.current_user is None


async def test_proactive_refresh_before_expiry(tmp_path):
    import attrs

    from appusers.server import LocalServer, load_config

    config = attrs.evolve(load_config(None), access_token_lifetime=40)
    async with LocalServer(config=config, data_dir=tmp_path / "srv") as srv:
        async with App(srv.app_id, base_url=srv.url, refresh_leeway=39) as app:
            user = await app.log_in(Credentials.anonymous())
            before = srv.stats["refresh"]
            await asyncio.sleep(1.1)
            assert await user.functions.sum(1, 2) == 3
            assert srv.stats["refresh"] == before + 1
            # The fresh token is not "about to expire" yet: no second refresh.
            assert await user.functions.sum(1, 2) == 3
            assert srv.stats["refresh"] == before + 1


async def test_restore_without_network(make_app, server, tmp_path):
    path = tmp_path / "store" / "session.json"
    first = await make_app(storage=FileStorage(path))
    ana = await email_user(first, server, "gil@example.com")
    bob = await email_user(first, server, "hal@example.com")
    anon = await first.log_in(Credentials.anonymous())
    await bob.log_out()
    first.switch_user(ana)
    await asyncio.sleep(0)  # let the switch persist
    await first.aclose()

    requests: list[Request] = []

    async def unreachable(request: Request) -> Response | None:
        requests.append(request)
        raise TransportError("network unreachable (simulated)", method=request.method, url=request.url)

    transport = HookTransport(AiohttpTransport(), unreachable)
    async with App(server.app_id, base_url="http://127.0.0.1:9", storage=FileStorage(path),
                   transport=transport) as second:
        assert list(second.all_users) == [ana.id, bob.id, anon.id]
        restored = second.all_users
        assert restored[ana.id].state is UserState.LOGGED_IN
        assert restored[bob.id].state is UserState.LOGGED_OUT
        assert restored[anon.id].state is UserState.LOGGED_IN
        assert second.current_user is restored[ana.id]
        assert restored[ana.id].identities == ana.identities
        assert restored[ana.id].profile == ana.profile
        assert restored[ana.id].refresh_token == ana.refresh_token
        assert requests == []


async def test_corrupt_store_is_quarantined_and_the_app_starts(server, tmp_path):
    path = tmp_path / "session.json"
    path.write_bytes(b"\x00{not json")
    from appusers import StorageRecovered

    app = App(server.app_id, base_url=server.url, storage=FileStorage(path))
    seen: list[object] = []
    app.events.subscribe(seen.append)
    async with app:
        assert app.all_users == {}
        assert any(isinstance(e, StorageRecovered) and e.issue.kind == "quarantined" for e in seen)
        user = await app.log_in(Credentials.anonymous())
        assert user.is_logged_in
    assert await FileStorage(path).items("")  # a healthy store again
    assert list(Path(tmp_path).glob("session.json.corrupt-*"))
