"""Change streams of the embedded store: events built from committed writes, delivered per stream.

The store's worker thread commits a write, builds each change event once,
encodes it to BSON once and hands the same bytes to every interested stream in
one ``loop.call_soon_threadsafe`` per loop: FIFO callbacks, so every stream sees
changes in commit order, and a hundred watchers cost one hop, not a hundred.
A stream buffers those bytes (shared, immutable) up to a byte budget and decodes
an event only when its reader asks for it, so an idle reader costs no CPU and a
stalled one at most its budget: past it, the stream drops its buffer, leaves the
hub and fails with "fell behind" (MongoDB's ``ChangeStreamHistoryLost``).
A stream is a plain async iterator with no task of its own, so dropping one
without ``aclose()`` leaks nothing: the hub holds streams weakly.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import bson
from bson.timestamp import Timestamp

from ._codec import CODEC_OPTIONS, decode, id_key, to_view
from ._engine import Change, Namespace
from ._errors import DocumentStoreError
from ._matching import matches, prepare_filter

__all__ = ["EmbeddedChangeStream", "StreamFellBehind", "WatchHub"]

#: Bytes of undelivered events a stream holds by default before it fails as fallen behind.
DEFAULT_BUFFER_BYTES = 1024 * 1024


class StreamFellBehind(DocumentStoreError):
    """The reader did not keep up: more undelivered events than the stream's byte budget."""

    code_name = "ChangeStreamHistoryLost"


class EmbeddedChangeStream:
    """Async iterator of change-event dicts for one collection; see :meth:`DocumentCollection.watch`."""

    def __init__(
        self,
        hub: WatchHub,
        ns: Namespace,
        *,
        ids: Sequence[Any] | None,
        filter: Mapping[str, Any] | None,
        pre_images: bool = False,
    ) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise DocumentStoreError("watch() must be called from a running event loop") from None
        self._hub = hub
        self.ns = ns
        self.loop = self._loop
        self.pre_images = pre_images
        self._ids = None if ids is None else {id_key(i) for i in ids}
        self._filter = None if filter is None else prepare_filter(filter)
        self._buffer: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._budget = hub.buffer_bytes
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: DocumentStoreError | None = None
        self._on_fail: list[Callable[[DocumentStoreError], object]] = []

    def add_fail_callback(self, callback: Callable[[DocumentStoreError], object]) -> None:
        """Call ``callback(error)`` on the loop when the stream fails (its reader fell behind, a bad filter).

        The reader may be blocked elsewhere (a write to a client that stopped
        reading) and never come back for the error; this lets its owner act.
        """
        self._on_fail.append(callback)

    def wants(self, change: Change, event: dict[str, Any]) -> bool:
        """Whether this stream's ``ids``/``filter`` select ``event`` (called on the worker thread)."""
        if self._ids is not None and id_key(change.doc_id) not in self._ids:
            return False
        return self._filter is None or matches(self._filter, to_view(event))

    def end_threadsafe(self) -> None:
        """End the stream after what is buffered (the store closed)."""
        try:
            self._loop.call_soon_threadsafe(self._end)
        except RuntimeError:
            pass

    def fail_threadsafe(self, error: DocumentStoreError) -> None:
        """End the stream with ``error`` once the events before it are read."""
        try:
            self._loop.call_soon_threadsafe(self._fail, error)
        except RuntimeError:
            pass

    def _fail(self, error: DocumentStoreError) -> None:
        if self._closed:
            return
        self._error = error
        self._closed = True
        self._wake()
        callbacks, self._on_fail = self._on_fail, []
        for callback in callbacks:
            callback(error)

    def offer(self, events: list[bytes]) -> None:
        """Queue the BSON events of one delivery (on the stream's loop), or fail as fallen behind.

        A delivery (the events of one write) is always taken when the reader has
        read everything before it, however large it is; the budget bounds the
        backlog of a reader that has not.
        """
        if self._closed:
            return
        size = sum(len(data) for data in events)
        if self._buffer and self._buffered + size > self._budget:
            self._hub.unregister(self)
            self._buffer.clear()
            self._buffered = 0
            self._fail(
                StreamFellBehind(
                    f"(ChangeStreamHistoryLost) change stream fell behind: more than {self._budget} bytes "
                    "of events not yet read"
                )
            )
            return
        self._buffer.extend(events)
        self._buffered += size
        self._wake()

    def _end(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def next_nowait(self) -> dict[str, Any] | None:
        """The next buffered event, ``None`` if none is buffered yet; raises as ``__anext__`` at the end."""
        if self._buffer:
            data = self._buffer.popleft()
            self._buffered -= len(data)
            return decode(data)
        if self._closed:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            raise StopAsyncIteration
        return None

    def __aiter__(self) -> EmbeddedChangeStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            if self._buffer:
                data = self._buffer.popleft()
                self._buffered -= len(data)
                return decode(data)  # each reader decodes its own copy: it may mutate what it gets
            if self._closed:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        """Stop the stream now, dropping undelivered events; idempotent."""
        self._hub.unregister(self)
        self._buffer.clear()
        self._buffered = 0
        self._on_fail = []
        self._end()


class WatchHub:
    """Which streams watch which namespace; turns committed changes into events."""

    def __init__(self, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        if buffer_bytes < 1:
            raise ValueError("buffer_bytes must be positive")
        self.buffer_bytes = buffer_bytes
        self._lock = threading.Lock()
        self._streams: dict[Namespace, weakref.WeakSet[EmbeddedChangeStream]] = {}
        self._counter = 0
        self._last_second = 0
        self._increment = 0

    def register(self, stream: EmbeddedChangeStream) -> None:
        with self._lock:
            self._streams.setdefault(stream.ns, weakref.WeakSet()).add(stream)

    def unregister(self, stream: EmbeddedChangeStream) -> None:
        with self._lock:
            streams = self._streams.get(stream.ns)
            if streams is not None:
                streams.discard(stream)

    def publish(self, changes: Sequence[Change]) -> None:
        """Deliver ``changes`` (committed, in order) to the streams that want them; worker thread only."""
        batches: dict[asyncio.AbstractEventLoop, dict[EmbeddedChangeStream, list[bytes]]] = {}
        for change in changes:
            with self._lock:
                streams = list(self._streams.get(change.ns, ()))
            if not streams:
                continue
            base = self._event(change)
            # Encoded once per shape (with or without the pre-image) and shared by every stream.
            data: bytes | None = None
            data_pre: bytes | None = None
            for stream in streams:
                try:
                    wanted = stream.wants(change, base)
                except DocumentStoreError as exc:
                    # A filter that fails on this event fails its own stream, never the committed write.
                    self.unregister(stream)
                    stream.fail_threadsafe(exc)
                    continue
                if wanted:
                    if stream.pre_images and change.pre is not None:
                        if data_pre is None:
                            data_pre = bson.encode(
                                {**base, "fullDocumentBeforeChange": decode(change.pre)},
                                codec_options=CODEC_OPTIONS,
                            )
                        encoded = data_pre
                    else:
                        if data is None:
                            data = bson.encode(base, codec_options=CODEC_OPTIONS)
                        encoded = data
                    batches.setdefault(stream.loop, {}).setdefault(stream, []).append(encoded)
        for loop, batch in batches.items():
            try:
                loop.call_soon_threadsafe(_deliver, batch)
            except RuntimeError:  # that loop is closed: nobody can read those streams any more
                pass

    def fail_all(self, error: Callable[[], DocumentStoreError]) -> None:
        """End every stream with ``error()`` (events were lost for all of them)."""
        with self._lock:
            streams = [s for group in self._streams.values() for s in group]
            self._streams.clear()
        for stream in streams:
            stream.fail_threadsafe(error())

    def end_all(self) -> None:
        with self._lock:
            streams = [s for group in self._streams.values() for s in group]
            self._streams.clear()
        for stream in streams:
            stream.end_threadsafe()

    def _event(self, change: Change, token: Any = None, cluster_time: Any = None) -> dict[str, Any]:
        if token is None:
            self._counter += 1
            now = int(time.time())
            if now != self._last_second:
                self._last_second, self._increment = now, 0
            self._increment += 1
            cluster_time = Timestamp(now, self._increment)
            token = {"_data": f"{now:08X}{self._increment:08X}{self._counter:016X}"}
        event: dict[str, Any] = {
            "_id": dict(token),
            "operationType": change.operation,
            "clusterTime": cluster_time,
            "ns": {"db": change.ns[0], "coll": change.ns[1]},
            "documentKey": {"_id": decode(change.post or change.pre or b"")["_id"]},
        }
        if change.post is not None:
            event["fullDocument"] = decode(change.post)
        if change.operation == "update":
            assert change.pre is not None and change.post is not None
            updated: dict[str, Any] = {}
            removed: list[str] = []
            _diff(decode(change.pre), decode(change.post), "", updated, removed)
            event["updateDescription"] = {"updatedFields": updated, "removedFields": removed}
        return event


def _deliver(batch: dict[EmbeddedChangeStream, list[bytes]]) -> None:
    for stream, events in batch.items():
        stream.offer(events)


def _diff(
    old: dict[str, Any], new: dict[str, Any], prefix: str, updated: dict[str, Any], removed: list[str]
) -> None:
    """MongoDB-style update description: changed sub-documents are descended, arrays are replaced whole."""
    for key, value in new.items():
        path = f"{prefix}{key}"
        if key not in old:
            updated[path] = value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            _diff(old[key], value, path + ".", updated, removed)
        elif type(value) is not type(old[key]) or value != old[key]:
            updated[path] = value
    removed.extend(f"{prefix}{key}" for key in old if key not in new)
