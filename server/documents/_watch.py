"""Change streams of the embedded store: events built from committed writes, delivered per stream.

The store's worker thread commits a write and hands its events to each
interested stream with ``loop.call_soon_threadsafe``: one thread, FIFO
callbacks, so every stream sees changes in commit order. A stream is a plain
async iterator with a bounded buffer and no task of its own, so dropping one
without ``aclose()`` leaks nothing: the hub holds streams weakly.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from bson.timestamp import Timestamp

from ._codec import decode, id_key, to_view
from ._engine import Change, Namespace
from ._errors import DocumentStoreError
from ._matching import matches, prepare_filter

__all__ = ["EmbeddedChangeStream", "WatchHub"]

#: Events a stream buffers before it fails with "fell behind" (MongoDB's ChangeStreamHistoryLost).
MAX_BUFFERED = 10_000


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
        self.pre_images = pre_images
        self._ids = None if ids is None else {id_key(i) for i in ids}
        self._filter = None if filter is None else prepare_filter(filter)
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._overflow = False
        self._error: DocumentStoreError | None = None

    def wants(self, change: Change, event: dict[str, Any]) -> bool:
        """Whether this stream's ``ids``/``filter`` select ``event`` (called on the worker thread)."""
        if self._ids is not None and id_key(change.doc_id) not in self._ids:
            return False
        return self._filter is None or matches(self._filter, to_view(event))

    def offer_threadsafe(self, event: dict[str, Any]) -> None:
        """Queue ``event`` from any thread."""
        try:
            self._loop.call_soon_threadsafe(self._offer, event)
        except RuntimeError:  # the stream's loop is closed: nobody can read it any more
            pass

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
        if not self._closed:
            self._error = error
            self._closed = True
            self._wake()

    def _offer(self, event: dict[str, Any]) -> None:
        if self._closed:
            return
        if len(self._buffer) >= MAX_BUFFERED:
            self._overflow = True
            self._buffer.clear()
        else:
            self._buffer.append(event)
        self._wake()

    def _end(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> EmbeddedChangeStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            if self._overflow:
                self._closed = True
                self._overflow = False
                self._hub.unregister(self)
                raise DocumentStoreError("change stream fell behind: more than 10000 undelivered events")
            if self._buffer:
                return self._buffer.popleft()
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
        self._end()


class WatchHub:
    """Which streams watch which namespace; turns committed changes into events."""

    def __init__(self) -> None:
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
        for change in changes:
            with self._lock:
                streams = list(self._streams.get(change.ns, ()))
            if not streams:
                continue
            base = self._event(change)
            for stream in streams:
                try:
                    wanted = stream.wants(change, base)
                except DocumentStoreError as exc:
                    # A filter that fails on this event fails its own stream, never the committed write.
                    self.unregister(stream)
                    stream.fail_threadsafe(exc)
                    continue
                if wanted:
                    # Each stream gets its own copy: consumers may mutate what they receive.
                    event = self._event(change, base["_id"], base["clusterTime"])
                    if stream.pre_images and change.pre is not None:
                        event["fullDocumentBeforeChange"] = decode(change.pre)
                    stream.offer_threadsafe(event)

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
