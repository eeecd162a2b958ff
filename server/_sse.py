"""Streaming calls (``watch``): ``baas_request`` decoding and Server-Sent Events."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import logging
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

from . import _ejson
from ._errors import ApiError
from ._http import cors
from ._mongo import rule_error, store_errors
from .rules import RuleDenied, RuleEvaluationError

__all__ = ["WatchSlots", "decode_baas_request", "serve_watch", "sse_event"]

log = logging.getLogger("appusers.server")

_SSE_HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle stream
_LIVENESS = 1.0  # seconds between checks that an idle stream's client is still connected
#: Seconds a stream that failed (its reader fell behind) waits for the reader to take the error event
#: before the connection is cut: a reader that stopped reading would otherwise hold it for ever.
FAIL_GRACE = 5.0
#: Kernel send buffer of a watch connection: without it the kernel grows it to megabytes for a
#: reader that never reads, and every byte in it was encoded for nobody.
_SEND_BUFFER = 128 * 1024


class WatchSlots:
    """Caps on open watch streams, per user and for the whole server."""

    def __init__(self, total: int, per_user: int) -> None:
        self.total = total
        self.per_user = per_user
        self._open = 0
        self._by_user: collections.Counter[str] = collections.Counter()

    @property
    def open(self) -> int:
        """Streams open now."""
        return self._open

    @contextlib.contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        """One slot for the duration of a stream; 429 when a cap is reached."""
        if self._open >= self.total:
            raise ApiError(
                429, "TooManyRequests", f"too many open watch streams on this server (limit {self.total})"
            )
        if self._by_user[user_id] >= self.per_user:
            raise ApiError(
                429, "TooManyRequests", f"too many open watch streams for this user (limit {self.per_user})"
            )
        self._open += 1
        self._by_user[user_id] += 1
        try:
            yield
        finally:
            self._open -= 1
            self._by_user[user_id] -= 1
            if not self._by_user[user_id]:
                del self._by_user[user_id]


def sse_event(kind: str, data: Any) -> bytes:
    """One SSE event; ``%``, LF and CR in the data are percent-escaped (as App Services does)."""
    text = _ejson.dumps(data).replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")
    return f"event: {kind}\ndata: {text}\n\n".encode()


def _error_event(exc: BaseException) -> bytes:
    if isinstance(exc, RuleDenied | RuleEvaluationError):
        exc = rule_error(exc)
        log.warning("watch stream ended: %s", exc.message)
    elif isinstance(exc, ApiError):
        # A rule's %function failed; its message is for the caller, not for the log.
        log.warning("watch stream ended: a rule's function failed (%s)", exc.code)
    if isinstance(exc, ApiError):
        return sse_event("error", {"error_code": exc.code, "error": exc.message})
    return sse_event("error", {"error_code": "MongoDBError", "error": str(exc) or type(exc).__name__})


def _stream_errors() -> tuple[type[BaseException], ...]:
    """What ends a stream with an error event: rules that refuse or fail, and store errors."""
    return (RuleDenied, RuleEvaluationError, ApiError, *store_errors())


def decode_baas_request(value: str | None) -> Mapping[str, Any]:
    """The call document of a streaming request: base64 (either alphabet) of EJSON."""
    if not value:
        raise ApiError.missing_parameter("baas_request")
    # A literal '+' that was not percent-encoded arrives as a space after query decoding.
    text = value.replace(" ", "+").strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True)
        call = _ejson.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError.invalid_parameter("baas_request is not base64-encoded JSON") from None
    if not isinstance(call, Mapping):
        raise ApiError.invalid_parameter("baas_request must encode a JSON object")
    return call


async def serve_watch(
    request: web.Request, watcher: Any, streams: set[asyncio.Task[Any]]
) -> web.StreamResponse:
    """Stream the change events of ``watcher`` until the client leaves or the server closes.

    The running task is kept in ``streams`` so the server can cancel it on close.
    """
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = "text/event-stream"
    resp.headers["Cache-Control"] = "no-store"
    cors(request, resp.headers)
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
    cut = False
    add_fail_callback = getattr(watcher, "add_fail_callback", None)
    if add_fail_callback is not None and transport is not None:

        def cut_if_stuck() -> None:
            nonlocal cut
            if not task.done():
                cut = True
                log.info("watch stream closed: its reader fell behind and did not take the error event")
                transport.abort()

        add_fail_callback(lambda _error: asyncio.get_running_loop().call_later(FAIL_GRACE, cut_if_stuck))
    left = False
    try:
        await resp.prepare(request)
        await resp.write(b": stream open\n\n")
        iterator = watcher.__aiter__()
        # The embedded store's streams hand out what is buffered without a task per event.
        next_nowait = getattr(watcher, "next_nowait", None)
        pending: asyncio.Future[Any] | None = None
        idle = 0.0
        try:
            while True:
                if pending is None and next_nowait is not None:
                    try:
                        event = next_nowait()
                    except StopAsyncIteration:
                        break
                    except _stream_errors() as exc:
                        await resp.write(_error_event(exc))
                        break
                    if event is not None:
                        await resp.write(sse_event("message", event))
                        continue
                if pending is None:
                    pending = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=_LIVENESS)
                if not done:
                    # aiohttp does not cancel a handler whose client left: look, so the slot and
                    # the stream's buffer are freed within a second, not at the next heartbeat.
                    if request.transport is None or request.transport.is_closing():
                        raise ConnectionResetError("the client went away")
                    idle += _LIVENESS
                    if idle >= _SSE_HEARTBEAT:
                        idle = 0.0
                        # A comment line keeps proxies from timing out and reveals a vanished client.
                        await resp.write(b": keep-alive\n\n")
                    continue
                idle = 0.0
                next_event, pending = pending, None
                try:
                    event = next_event.result()
                except StopAsyncIteration:
                    break
                except _stream_errors() as exc:
                    await resp.write(_error_event(exc))
                    break
                await resp.write(sse_event("message", event))
        finally:
            if pending is not None:
                pending.cancel()
    except ConnectionError:
        left = True
    except asyncio.CancelledError:
        pass  # the server is closing
    finally:
        streams.discard(task)
        aclose = getattr(watcher, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # closing a dead watcher must not mask the real outcome
                log.debug("watch close failed", exc_info=True)
    if left and not cut:
        # An everyday event (a closed tab, a lost network), not a server fault: no traceback.
        log.info("watch stream closed: the client went away")
    return resp
