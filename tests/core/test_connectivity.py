"""Retries and connectivity with real faults on the real loopback server (issue 12 items 1, 3, 5).

Every fault here is the local server's (``Fault`` sequences, resets, hangs) or the server itself
stopped and started again at the same URL. Waits between attempts go through the policy's
injectable ``sleep``, which records them and yields without waiting, so the schedule is
asserted exactly and no test depends on timing.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import pytest

from appusers import App, Connectivity, ConnectivityState, Credentials, RetryPolicy, UserState
from appusers.adapters import MemoryStorage
from appusers.errors import (
    HTTPStatusError,
    MaintenanceError,
    RequestTimeoutError,
    ServiceError,
    TransportError,
)
from appusers.server import Fault, LocalServer

ONLINE, REFRESHING, OFFLINE = (
    ConnectivityState.ONLINE, ConnectivityState.REFRESHING, ConnectivityState.OFFLINE
)
BUSY = {"error": "busy", "error_code": "MaintenanceInProgress"}


class Waits:
    """The policy's sleep: records each wait and yields to the loop instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(round(seconds, 3))
        await asyncio.sleep(0)


def policy(waits: Waits, **kwargs: Any) -> RetryPolicy:
    kwargs.setdefault("random", lambda: 0.5)
    return RetryPolicy(sleep=waits, **kwargs)


def states(values: list[Connectivity | None]) -> list[str | None]:
    return [None if v is None else v.state.value for v in values]


async def test_idempotent_reads_ride_out_503_with_retry_after_and_back_off(app_for, server) -> None:
    waits = Waits()
    app = await app_for(retry=policy(waits))
    user = await app.log_in(Credentials.anonymous())
    seen: list[Connectivity | None] = []
    user.connectivity_changes.subscribe(seen.append)
    top: list[UserState] = []
    user.state_changes.subscribe(top.append)
    server.inject_faults("profile", [
        Fault.reply(503, BUSY, headers={"Retry-After": "2"}),
        Fault.reply(502),
        Fault.reply(504, headers={"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)}),
    ])
    profile = await user.refresh_profile()
    assert profile is user.profile
    assert server.stats["profile"] == 1 + 4  # the login's, then three faults and the answer
    assert waits.waits[:2] == [2.0, 0.5]  # Retry-After; then back-off 1 s x jitter 0.5
    assert 28 <= waits.waits[2] <= 30  # an HTTP-date, 30 s ahead
    # Each failed attempt is news: the error and the time of the next attempt change.
    assert states(seen) == ["online", "offline", "offline", "offline", "online"]
    assert isinstance(seen[1].error, MaintenanceError) and seen[1].next_attempt is not None
    assert isinstance(seen[2].error, HTTPStatusError) and seen[2].error.status == 502
    assert top == [UserState.LOGGED_IN]  # the top-level state never moved


async def test_attempts_run_out_with_a_typed_error_and_the_user_stays_logged_in(app_for, server) -> None:
    waits = Waits()
    app = await app_for(retry=policy(waits, max_attempts=3, reconnect=False))
    user = await app.log_in(Credentials.anonymous())
    token = user.access_token
    server.inject_faults("refresh", [Fault.reply(503, BUSY)] * 3)
    with pytest.raises(MaintenanceError) as info:
        await user.refresh_access_token()
    assert info.value.status == 503
    assert server.stats["refresh"] == 3 and len(waits.waits) == 2
    assert user.state is UserState.LOGGED_IN and user.access_token == token
    assert user.connectivity is not None and user.connectivity.state is OFFLINE


async def test_500_and_client_errors_are_answers_not_outages(app_for, server) -> None:
    waits = Waits()
    app = await app_for(retry=policy(waits))
    user = await app.log_in(Credentials.anonymous())
    server.inject_faults("profile", [Fault.reply(500, {"error": "boom", "error_code": "Internal"})])
    with pytest.raises(ServiceError):
        await user.refresh_profile()
    server.inject_faults("api_keys", [Fault.reply(500)])
    with pytest.raises(HTTPStatusError):
        await user.api_keys.fetch_all()
    assert server.stats["profile"] == 2 and server.stats["api_keys"] == 1 and waits.waits == []
    assert user.connectivity is not None and user.connectivity.state is ONLINE


async def test_function_calls_and_writes_are_never_retried(app_for, server) -> None:
    waits = Waits()
    app = await app_for(retry=policy(waits, reconnect=False))
    user = await app.log_in(Credentials.anonymous())
    server.inject_faults("function_call", [Fault.reply(503, BUSY)])
    with pytest.raises(MaintenanceError):
        await user.functions.sum(1, 2)
    assert server.stats["function_call"] == 1
    server.inject_faults("function_call", [Fault.reply(429, headers={"Retry-After": "1"})])
    with pytest.raises(ServiceError) as info:
        await user.functions.sum(1, 2)
    assert info.value.status == 429 and server.stats["function_call"] == 2
    server.inject_faults("api_keys", [Fault.reply(503)])
    with pytest.raises(HTTPStatusError):
        await user.api_keys.create("ci")  # a write
    assert server.stats["api_keys"] == 1
    assert waits.waits == []
    assert await user.functions.sum(1, 2) == 3


async def test_mongo_reads_are_retried_only_when_declared_safe(app_for, server) -> None:
    waits = Waits()
    app = await app_for(retry=policy(waits, reconnect=False))
    user = await app.log_in(Credentials.anonymous())
    plain = user.mongo_client("mongodb-atlas").db("shop").collection("orders")
    safe = user.mongo_client("mongodb-atlas", retry_reads=True).db("shop").collection("orders")
    server.inject_faults("function_call", [Fault.reply(503)])
    with pytest.raises(HTTPStatusError):
        await plain.find()
    server.inject_faults("function_call", [Fault.reply(503)])
    with pytest.raises(HTTPStatusError):
        await safe.insert_one({"a": 1})  # a write, even on a client that retries reads
    server.inject_faults("function_call", [Fault.reply(503), Fault.reply(503)])
    assert await safe.find() == []
    assert server.stats["function_call"] == 1 + 1 + 3 and len(waits.waits) == 2


async def test_timeouts_are_not_retried_and_fire_on_time(app_for, server) -> None:
    app = await app_for(retry=RetryPolicy(), timeout=0.3)
    user = await app.log_in(Credentials.anonymous())
    server.inject_faults("profile", [Fault.hang()])
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        await user.refresh_profile()
    assert 0.3 <= time.monotonic() - started < 0.3 * 1.1 + 0.5
    assert server.stats["profile"] == 2
    server.release_faults()


async def test_cancelling_the_caller_stops_the_retries_at_once(app_for, server) -> None:
    app = await app_for(retry=RetryPolicy(initial_delay=30, max_delay=30, deadline=120, random=lambda: 1.0))
    user = await app.log_in(Credentials.anonymous())
    server.inject_faults("profile", [Fault.reply(503)] * 3)
    task = asyncio.ensure_future(user.refresh_profile())
    while server.stats["profile"] < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1
    await asyncio.sleep(0.1)
    assert server.stats["profile"] == 2  # nothing more was sent


async def test_reset_connections_are_retried_for_idempotent_requests(app_for, server) -> None:
    waits = Waits()
    app = await app_for(retry=policy(waits))
    user = await app.log_in(Credentials.anonymous())
    server.inject_faults("api_keys", [Fault.reset(), Fault.reset()])
    assert await user.api_keys.fetch_all() == []
    assert server.stats["api_keys"] >= 3


async def test_server_stopped_and_started_again_mid_run(app_for, server: LocalServer) -> None:
    waits = Waits()
    app = await app_for(retry=policy(waits, max_attempts=2))
    user = await app.log_in(Credentials.anonymous())
    seen: list[Connectivity] = []
    app.connectivity_changes.subscribe(seen.append)
    await server.stop()
    with pytest.raises(TransportError):
        await user.refresh_profile()
    assert user.connectivity is not None and user.connectivity.state is OFFLINE
    assert isinstance(user.connectivity.error, TransportError)
    assert app.connectivity.state is OFFLINE
    # While offline the App probes by itself (waits recorded, not slept): the next try is known.
    while app.connectivity.next_attempt is None:
        await asyncio.sleep(0.01)
    assert "retrying in" in app.connectivity.describe()
    await server.start()
    await asyncio.wait_for(app.wait_online(), 10)
    assert user.connectivity.state is ONLINE and app.connectivity.state is ONLINE
    assert (await user.refresh_profile()).type == "normal"
    assert states(seen)[0] == "online" and "offline" in states(seen) and states(seen)[-1] == "online"
    assert user.state is UserState.LOGGED_IN


async def test_a_restored_user_with_its_server_down_is_offline_until_the_server_answers(
    server: LocalServer,
) -> None:
    storage = MemoryStorage()
    waits = Waits()
    async with App(server.app_id, base_url=server.url, storage=storage, retry=policy(waits)) as first:
        user = await first.log_in(Credentials.anonymous())
    await server.stop()
    async with App(server.app_id, base_url=server.url, storage=storage, retry=policy(waits)) as second:
        restored = second.all_users[user.id]
        assert restored.state is UserState.LOGGED_IN  # restored without any request
        waiting = asyncio.ensure_future(second.wait_online())
        while restored.connectivity is None or restored.connectivity.state is not OFFLINE:
            await asyncio.sleep(0.01)
        assert not waiting.done()
        await server.start()
        await asyncio.wait_for(waiting, 10)
        assert restored.connectivity is not None and restored.connectivity.state is ONLINE


async def test_refreshing_is_a_sub_state_while_the_refresh_is_in_flight(app_for, server) -> None:
    app = await app_for(retry=policy(Waits()))
    user = await app.log_in(Credentials.anonymous())
    seen: list[Connectivity | None] = []
    user.connectivity_changes.subscribe(seen.append)
    server.inject_faults("refresh", [Fault.hang()])
    refresh = asyncio.ensure_future(user.refresh_access_token())
    while server.stats["refresh"] < 1:
        await asyncio.sleep(0.01)
    assert user.connectivity is not None and user.connectivity.state is REFRESHING
    assert app.connectivity.state is REFRESHING
    server.release_faults()  # the hung attempt is dropped; the retry gets a token
    await refresh
    assert states(seen) == ["online", "refreshing", "online"] or states(seen)[-1] == "online"
    assert user.connectivity.state is ONLINE


async def test_log_out_while_offline_wipes_tokens_and_connectivity(app_for, server) -> None:
    app = await app_for(retry=policy(Waits(), max_attempts=2))
    user = await app.log_in(Credentials.anonymous(reuse=False))
    seen: list[Connectivity | None] = []
    user.connectivity_changes.subscribe(seen.append)
    await server.stop()
    with pytest.raises(TransportError):
        await user.log_out()
    assert user.state is UserState.REMOVED and user.access_token is None
    assert user.connectivity is None and seen[-1] is None
    await server.start()


async def test_retry_policy_is_checked(server) -> None:
    from appusers.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        App(server.app_id, base_url=server.url, retry="none")  # type: ignore[arg-type]


async def test_no_background_work_survives_aclose(server) -> None:
    app = App(server.app_id, base_url=server.url, retry=policy(Waits(), max_attempts=1))
    await app.open()
    await app.log_in(Credentials.anonymous())
    await server.stop()
    with pytest.raises(TransportError):
        await app.current_user.refresh_profile()  # type: ignore[union-attr]
    await app.aclose()  # cancels the probe; -W error would flag a stray task or an unclosed session
    await server.start()


@pytest.fixture
async def app_for(server: LocalServer):
    apps: list[App] = []

    async def make(**kwargs: Any) -> App:
        app = App(server.app_id, base_url=server.url, **kwargs)
        apps.append(app)
        await app.open()
        return app

    yield make
    for app in apps:
        await app.aclose()
