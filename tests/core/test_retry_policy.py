"""RetryPolicy on its own: the back-off schedule (asserted in ms, with the chance and the clocks
injected), Retry-After in both forms, the deadline, and the retry loop's rules."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable

import attrs
import pytest

from appusers import RetryPolicy
from appusers._retry import parse_retry_after, send_with_retries
from appusers.errors import InvalidArgumentError, RequestTimeoutError, TransportError
from appusers.transport import Response


class FakeTime:
    """A monotonic clock that only moves when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def policy(fake: FakeTime, *, jitter: float = 1.0, **kwargs: object) -> RetryPolicy:
    return RetryPolicy(sleep=fake.sleep, clock=fake.clock, wall_clock=lambda: 1_700_000_000.0,
                       random=lambda: jitter, **kwargs)


def test_defaults_are_documented_values() -> None:
    default = RetryPolicy()
    assert (default.max_attempts, default.initial_delay, default.max_delay) == (4, 0.5, 8.0)
    assert default.multiplier == 2.0
    assert (default.deadline, default.max_retry_after, default.retry_timeouts) == (30.0, 60.0, False)
    assert default.reconnect is True
    assert default.statuses == frozenset({429, 502, 503, 504})
    assert RetryPolicy.none().max_attempts == 1 and not RetryPolicy.none().reconnect
    assert RetryPolicy() == RetryPolicy()  # a value: the injected callables do not count


def test_backoff_caps_double_up_to_max_delay_in_ms() -> None:
    fake = FakeTime()
    schedule = [round(policy(fake).backoff_cap(n) * 1000) for n in range(1, 9)]
    assert schedule == [500, 1000, 2000, 4000, 8000, 8000, 8000, 8000]
    assert policy(fake).backoff_cap(10_000) == 8.0  # no overflow however long it goes


def test_full_jitter_spreads_each_wait_over_zero_to_the_cap() -> None:
    fake = FakeTime()
    assert policy(fake, jitter=0.0).backoff(3) == 0.0
    assert policy(fake, jitter=0.25).backoff(3) == 0.5
    assert policy(fake, jitter=0.999).backoff(1) == pytest.approx(0.4995)
    real = RetryPolicy()
    waits = [real.backoff(4) for _ in range(2000)]
    assert all(0 <= w <= 4.0 for w in waits)
    assert min(waits) < 0.4 and max(waits) > 3.6  # spread over the whole range, not clustered


def test_retry_after_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after(date, now=now) == pytest.approx(7.0)
    assert parse_retry_after(email.utils.formatdate(now - 50, usegmt=True), now=now) == 0.0
    assert parse_retry_after("99999999999999999999", now=now) == 10.0**9
    for junk in (None, "", "-1", "1.5", "soon", "٣", "Wed, 99 Foo 2015 07:28:00 GMT",
                 "Wed, 21 Oct 2015 07:28:00", "\x00", "1e3"):
        assert parse_retry_after(junk, now=now) is None, junk


def test_retry_after_is_capped_and_replaces_backoff() -> None:
    fake = FakeTime()
    p = policy(fake, max_retry_after=20)
    assert p.delay(1, {"retry-after": "2"}) == 2.0
    assert p.delay(1, {"retry-after": "3600"}) == 20.0
    assert p.delay(2, {"retry-after": "nonsense"}) == 1.0  # unreadable: back-off as usual
    assert p.delay(2, {}) == 1.0


@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0}, {"max_attempts": 101}, {"max_attempts": 2.5}, {"max_attempts": True},
    {"initial_delay": -1}, {"max_delay": float("inf")}, {"deadline": float("nan")}, {"deadline": "30"},
    {"multiplier": 0.5}, {"max_retry_after": -0.1},
])
def test_bad_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(**kwargs)


def answers(*items: Response | Exception) -> tuple[list[int], Callable[[], object]]:
    sent: list[int] = []
    queue = list(items)

    async def send() -> Response:
        sent.append(1)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return sent, send


def refused() -> TransportError:
    return TransportError("refused", method="GET", url="http://x")


class Recorder:
    def __init__(self) -> None:
        self.failed: list[tuple[object, float | None]] = []
        self.answered: list[int] = []

    def attempt_failed(self, failure: object, retry_at: float | None) -> None:
        self.failed.append((failure, retry_at))

    def attempt_answered(self, response: Response) -> None:
        self.answered.append(response.status)


async def test_idempotent_requests_are_retried_with_the_schedule() -> None:
    fake = FakeTime()
    sent, send = answers(refused(), Response(503), Response(502, {"retry-after": "3"}), Response(200))
    seen = Recorder()
    response = await send_with_retries(policy(fake, jitter=0.5), send, idempotent=True, observer=seen)
    assert response.status == 200 and len(sent) == 4
    assert [round(s * 1000) for s in fake.slept] == [250, 500, 3000]
    assert [at for _f, at in seen.failed] == [1000.25, 1000.75, 1003.75]
    assert seen.answered == [200]


async def test_attempts_run_out_and_the_last_answer_stands() -> None:
    fake = FakeTime()
    sent, send = answers(*[Response(503)] * 4)
    seen = Recorder()
    response = await send_with_retries(policy(fake), send, idempotent=True, observer=seen)
    assert response.status == 503 and len(sent) == 4 and len(fake.slept) == 3
    assert seen.failed[-1][1] is None  # no further attempt announced
    sent, send = answers(*[refused()] * 4)
    with pytest.raises(TransportError):
        await send_with_retries(policy(fake), send, idempotent=True)
    assert len(sent) == 4


async def test_the_deadline_stops_retries_that_would_start_too_late() -> None:
    fake = FakeTime()
    later = Response(503, {"retry-after": "20"})
    sent, send = answers(later, later, Response(200))
    response = await send_with_retries(policy(fake, deadline=30), send, idempotent=True)
    assert response.status == 503 and len(sent) == 2 and fake.slept == [20.0]


async def test_non_idempotent_requests_and_timeouts_are_sent_once() -> None:
    fake = FakeTime()
    for failure in (refused(), Response(503), Response(429)):
        sent, send = answers(failure, Response(200))
        if isinstance(failure, Exception):
            with pytest.raises(TransportError):
                await send_with_retries(policy(fake), send, idempotent=False)
        else:
            assert (await send_with_retries(policy(fake), send, idempotent=False)).status == failure.status
        assert len(sent) == 1
    sent, send = answers(RequestTimeoutError("slow", method="GET", url="x"), Response(200))
    with pytest.raises(RequestTimeoutError):
        await send_with_retries(policy(fake), send, idempotent=True)
    assert len(sent) == 1
    sent, send = answers(RequestTimeoutError("slow", method="GET", url="x"), Response(200))
    opted_in = policy(fake, retry_timeouts=True)
    assert (await send_with_retries(opted_in, send, idempotent=True)).status == 200
    assert fake.slept == [0.5]  # only the opted-in timeout was retried


async def test_statuses_that_are_answers_are_not_retried() -> None:
    fake = FakeTime()
    for status in (200, 400, 401, 404, 500, 501):
        sent, send = answers(Response(status), Response(200))
        assert (await send_with_retries(policy(fake), send, idempotent=True)).status == status
        assert len(sent) == 1


async def test_cancelling_the_caller_stops_the_retries_at_once() -> None:
    sent, send = answers(Response(503), Response(200))
    real_sleep = RetryPolicy(initial_delay=60, max_delay=60, deadline=120, random=lambda: 1.0)
    task = asyncio.ensure_future(send_with_retries(real_sleep, send, idempotent=True))
    while not sent:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 1 and len(sent) == 1


def test_policy_is_an_immutable_value() -> None:
    p = RetryPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.max_attempts = 9
    assert attrs.evolve(p, max_attempts=2).max_attempts == 2
    assert "sleep" not in repr(p) and "max_attempts=4" in repr(p)
