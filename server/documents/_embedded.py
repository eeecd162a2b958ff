"""``EmbeddedDocumentStore``: the default store, an :class:`Engine` behind one worker thread.

Every operation runs on a single worker thread, one after another. That gives
the asyncio server what a database gives it: operations are atomic and
serialised (a thousand concurrent ``$inc`` lose nothing), the event loop never
blocks on a scan, an aggregate or an fsync, and change events leave in commit
order. A cancelled caller does not cancel its operation: like a request already
sent to a database, it completes (or fails) as a whole.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._per_iteration import PerIteration
from ._codec import decode
from ._deadline import Interrupted, MaxTimeExpired, Watchdog
from ._engine import Change, Engine, Namespace
from ._errors import DocumentStoreError
from ._limits import check_depth, check_namespace
from ._projection import Projection
from ._protocol import Filter, Sort, UpdateResult, WriteGuard
from ._watch import EmbeddedChangeStream, StreamFellBehind, WatchHub

__all__ = ["EmbeddedDocumentCollection", "EmbeddedDocumentStore"]

T = TypeVar("T")
log = logging.getLogger("appusers.server.documents")

#: Seconds an operation may take, queueing included, before it fails with ``MaxTimeMSExpired``.
DEFAULT_TIME_LIMIT = 10.0
#: Bytes of undelivered change events a stream may hold before it is closed as fallen behind.
DEFAULT_WATCH_BUFFER = 1024 * 1024
#: Seconds between two looks for other processes' writes when idle (shared mode): the most a
#: change stream waits for a write made through another worker while this one serves nothing.
POLL_INTERVAL = 0.05


class EmbeddedDocumentStore:
    """Documents in a directory (or in memory with ``path=None``), with MongoDB semantics.

    >>> store = EmbeddedDocumentStore(Path("data/documents"))   # doctest: +SKIP
    >>> await store.collection("shop", "orders").insert_one({"status": "open"})   # doctest: +SKIP

    One process per directory (the directory is locked while open), unless ``shared``: the
    worker processes of one server, whose supervisor holds that lock for them, each open the
    directory with ``shared=True`` and see each other's writes on their next operation, their
    change streams within :data:`POLL_INTERVAL` (see ``_engine``). Call :meth:`aclose` when
    done; it ends every change stream.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        time_limit: float = DEFAULT_TIME_LIMIT,
        watch_buffer_bytes: int = DEFAULT_WATCH_BUFFER,
        shared: bool = False,
    ) -> None:
        if not time_limit > 0:
            raise ValueError("time_limit must be a positive number of seconds")
        self._path = path
        self._shared = shared
        self._version_db: sqlite3.Connection | None = None
        #: The shared ``write_version``, read once per event-loop iteration (see there).
        self._version = PerIteration(self._shared_version)
        self._closed = True  # until the engine is open: a failed open leaves nothing to close
        self._time_limit = float(time_limit)
        self._hub = WatchHub(watch_buffer_bytes)
        self._watchdog = Watchdog("appusers-documents")
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="appusers-documents")
        try:
            # Opened on the worker, the only thread that will ever touch the SQLite connection.
            self._engine = self._executor.submit(lambda: Engine(path, shared=shared)).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        # Past this point a write commits: the deadline no longer applies (see _deadline).
        self._engine.before_commit = self._watchdog.disarm
        self._closed = False
        self._stop_polling = threading.Event()
        self._poller: threading.Thread | None = None
        if shared:
            self._poller = threading.Thread(
                target=self._poll_loop, name="appusers-documents-poll", daemon=True
            )
            self._poller.start()

    def __del__(self) -> None:
        # Only a warning: closing needs the event loop (svcs' pattern). The idle worker still stops.
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {self!r}: call 'await store.aclose()'", ResourceWarning, stacklevel=2)
            self._executor.shutdown(wait=False)

    def __repr__(self) -> str:
        where = "memory" if self._path is None else str(self._path)
        return f"<EmbeddedDocumentStore {where}{' closed' if self._closed else ''}>"

    @property
    def time_limit(self) -> float:
        """Seconds each operation may take, queueing included; settable (applies to later operations)."""
        return self._time_limit

    @time_limit.setter
    def time_limit(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError("time_limit must be a positive number of seconds")
        self._time_limit = float(seconds)

    def write_version(self, database: str, name: str) -> int:
        """A number that changes whenever a write to the collection commits.

        Read on the caller's thread, with no hop to the worker: a cache of reads from the
        collection stays valid while this is unchanged. Every write passes through this
        store (the directory is locked to one process), so no write escapes it; a write's
        caller resumes only after the number changed.

        Shared (workers): other processes write too, and this process learns of it only when
        its worker catches up. So the number is SQLite's ``PRAGMA data_version`` on a
        connection of the caller's own, which changes on every commit to the file by any
        connection (this store's included): coarser (any collection), never stale.

        Read once per event-loop iteration, as the users store checks other processes' commits
        (``SqliteUserStore.check_per_iteration``, whose docstring has the argument): a request
        sent after a write completed is read by the loop in a later iteration than any look
        taken before that write, and the look is retaken first in every iteration after one
        that took it. A query per function call was 7% of a worker's CPU under load.
        """
        if self._shared:
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:  # another thread: no iteration to keep the number for
                loop = None
            return self._version.get(loop)
        return self._engine.versions.get((database, name), 0)

    def _shared_version(self) -> int:
        if self._version_db is None:
            assert self._path is not None  # a shared store has a directory
            self._version_db = sqlite3.connect(
                self._path / "documents.sqlite3",
                isolation_level=None,
                check_same_thread=False,
            )
        return int(self._version_db.execute("PRAGMA data_version").fetchone()[0])

    def collection(self, database: str, name: str) -> EmbeddedDocumentCollection:
        """The collection ``name`` in ``database``; it exists once something is written to it."""
        check_namespace(database, name)
        return EmbeddedDocumentCollection(self, (database, name))

    async def aclose(self) -> None:
        """Finish queued operations, close the storage, end every change stream; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_polling.set()
        if self._version_db is not None:
            self._version_db.close()
            self._version_db = None
        # FIFO worker: the close runs after every operation submitted before it.
        await asyncio.wrap_future(self._executor.submit(self._engine.close))
        self._executor.shutdown(wait=False)
        self._watchdog.stop()
        self._hub.end_all()

    def _poll_loop(self) -> None:
        pending: concurrent.futures.Future[None] | None = None
        while not self._stop_polling.wait(POLL_INTERVAL):
            if pending is None or pending.done():
                try:
                    pending = self._executor.submit(self._poll)
                except RuntimeError:  # the executor shut down: the store is closing
                    return

    def _poll(self) -> None:
        if self._closed:
            return
        try:
            self._engine.catch_up()
        except (sqlite3.Error, DocumentStoreError):
            log.warning("looking for other workers' document writes failed", exc_info=True)
        finally:
            self._deliver_caught_up()

    def _deliver_caught_up(self) -> None:
        """Hand what the engine caught up from other processes to the change streams (worker thread)."""
        if not self._shared:
            return
        changes, lost = self._engine.take_caught_up()
        if lost:
            self._hub.fail_all(
                lambda: StreamFellBehind(
                    "(ChangeStreamHistoryLost) change stream fell behind: this worker missed changes"
                    " made through another one"
                )
            )
        if changes:
            self._hub.publish(changes)

    async def _run(
        self,
        fn: Callable[[Engine], tuple[T, list[Change]]],
        *,
        queries: Sequence[Any] = (),
        documents: Sequence[Any] = (),
        passing: tuple[type[Exception], ...] = (),
    ) -> T:
        """Run ``fn`` on the worker within the time limit, after the nesting checks of its inputs.

        ``queries`` (filters, updates, projections, sorts, pipelines) count dotted
        path segments as levels; ``documents`` only their nesting. Exceptions of
        the ``passing`` types reach the caller as they are.
        """
        if self._closed:
            raise DocumentStoreError("the document store is closed")

        limit = self._time_limit
        # The limit counts from the request, so time queued behind a slow operation counts too.
        deadline = time.monotonic() + limit

        def work() -> T:
            if time.monotonic() >= deadline:
                raise MaxTimeExpired(limit)  # never started: nothing to undo
            if not self._shared:
                return attempt()
            try:
                # Unarmed: a catch-up cut short by the deadline would make the engine reload.
                try:
                    self._engine.catch_up()
                except sqlite3.Error as exc:
                    raise DocumentStoreError(f"cannot read other workers' writes: {exc}") from None
                return attempt()
            finally:
                self._deliver_caught_up()  # before the operation's own changes, which follow them

        def attempt() -> T:
            watchdog = self._watchdog
            try:
                watchdog.arm(deadline, limit)
                try:
                    for query in queries:
                        check_depth(query, paths=True, what="the query")
                    for document in documents:
                        check_depth(document, paths=False, what="the document")
                    result, changes = fn(self._engine)
                finally:
                    watchdog.disarm()
            except Interrupted:
                watchdog.disarm()
                raise MaxTimeExpired(limit) from None
            except _GuardRaised as raised:
                # The caller's own verdict on the write (a rule denial, a dry run's end): theirs, as is.
                raise raised.error from None
            except DocumentStoreError:
                raise
            except passing:
                raise
            except Exception as exc:
                # The borrowed matcher and pipeline engine raise all sorts for inputs they cannot
                # handle; the caller sent them, so it is a bad request, but worth a log line.
                log.warning("document store operation failed unexpectedly", exc_info=True)
                raise DocumentStoreError(
                    f"the operation could not be evaluated ({type(exc).__name__})"
                ) from None
            self._deliver_caught_up()  # what a write caught up under its lock came first
            if changes:
                self._hub.publish(changes)
            return result

        return await asyncio.wrap_future(self._executor.submit(work))

    def _watch(
        self, ns: Namespace, ids: Sequence[Any] | None, filter: Filter | None, pre_images: bool = False
    ) -> EmbeddedChangeStream:
        if self._closed:
            raise DocumentStoreError("the document store is closed")
        if ids is not None and not isinstance(ids, list | tuple):
            raise DocumentStoreError("watch ids must be an array")
        if filter is not None and not isinstance(filter, Mapping):
            raise DocumentStoreError("a watch filter must be a document")
        check_depth(filter, paths=True, what="the watch filter")
        check_depth(ids, paths=False, what="the watch ids")
        stream = EmbeddedChangeStream(self._hub, ns, ids=ids, filter=filter, pre_images=pre_images)
        if filter:
            # Surface a malformed filter now, as a 400 to the caller, not later on the stream.
            stream.wants(Change("insert", ns, None, None, None), {"operationType": "insert", "ns": {}})
        self._hub.register(stream)
        return stream


class EmbeddedDocumentCollection:
    """A collection of an :class:`EmbeddedDocumentStore`; implements ``DocumentCollection``."""

    def __init__(self, store: EmbeddedDocumentStore, ns: Namespace) -> None:
        self._store = store
        self._ns = ns

    def __repr__(self) -> str:
        return f"<EmbeddedDocumentCollection {self._ns[0]}.{self._ns[1]}>"

    async def find(
        self,
        filter: Filter | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Matching documents, sorted, then limited (``None``/0: no limit), then projected."""
        _check_limit(limit)
        return await self._store._run(
            lambda e: (e.find(self._ns, filter, projection, sort, limit), []),
            queries=(filter, projection, sort),
        )

    async def find_one(
        self,
        filter: Filter | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
    ) -> dict[str, Any] | None:
        """The first matching document (by ``sort``, else natural order), or ``None``."""
        docs = await self._store._run(
            lambda e: (e.find(self._ns, filter, projection, sort, 1), []), queries=(filter, projection, sort)
        )
        return docs[0] if docs else None

    async def insert_one(self, doc: Mapping[str, Any]) -> Any:
        """Insert ``doc``; returns its ``_id``."""
        ids = await self._store._run(lambda e: e.insert(self._ns, [doc]), documents=(doc,))
        return ids[0]

    async def insert_many(self, docs: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Insert every document in one transaction (all or none); returns ``_id`` values in input order."""
        if not isinstance(docs, list | tuple) or not docs:
            raise DocumentStoreError("insert_many needs a non-empty array of documents")
        return await self._store._run(lambda e: e.insert(self._ns, list(docs)), documents=docs)

    async def update_one(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        guard: WriteGuard | None = None,
    ) -> UpdateResult:
        """Update the first match with operators, or replace it with a plain document."""
        return await self._update(
            filter, update, multi=False, upsert=upsert, array_filters=array_filters, guard=guard
        )

    async def update_many(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        guard: WriteGuard | None = None,
    ) -> UpdateResult:
        """Update every match (operator documents only), atomically."""
        return await self._update(
            filter, update, multi=True, upsert=upsert, array_filters=array_filters, guard=guard
        )

    async def _update(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        multi: bool,
        upsert: bool,
        array_filters: Sequence[Mapping[str, Any]] | None,
        guard: WriteGuard | None = None,
    ) -> UpdateResult:
        def op(e: Engine) -> tuple[UpdateResult, list[Change]]:
            result, _, _, changes = e.update(
                self._ns,
                filter,
                update,
                multi=multi,
                upsert=upsert,
                array_filters=array_filters,
                guard=_let_through(guard),
            )
            return result, changes

        return await self._store._run(op, queries=(filter, update, array_filters))

    async def delete_one(self, filter: Filter, *, guard: WriteGuard | None = None) -> int:
        """Delete the first match; returns 0 or 1."""
        return await self._delete(filter, multi=False, guard=guard)

    async def delete_many(self, filter: Filter, *, guard: WriteGuard | None = None) -> int:
        """Delete every match; returns the count."""
        return await self._delete(filter, multi=True, guard=guard)

    async def _delete(self, filter: Filter, *, multi: bool, guard: WriteGuard | None = None) -> int:
        def op(e: Engine) -> tuple[int, list[Change]]:
            count, _, changes = e.delete(self._ns, filter, multi=multi, guard=_let_through(guard))
            return count, changes

        return await self._store._run(op, queries=(filter,))

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Run an aggregation pipeline (``$lookup`` ``from`` names a collection of the same database)."""
        return await self._store._run(lambda e: (e.aggregate(self._ns, pipeline), []), queries=(pipeline,))

    async def compute(
        self,
        fn: Callable[[], T],
        *,
        queries: Sequence[Any] = (),
        passing: tuple[type[Exception], ...] = (),
    ) -> T:
        """``fn()`` on the store's worker under its time limit and nesting checks (``queries``).

        For work on documents already read, such as the access rules' pipeline
        over the readable documents: it then stops at the deadline like any
        operation, and the event loop never runs it. ``fn`` must not touch the
        store. Exceptions other than ``DocumentStoreError`` and ``passing`` are
        reported as a ``DocumentStoreError``.
        """
        return await self._store._run(lambda _e: (fn(), []), queries=queries, passing=passing)

    async def count(self, filter: Filter | None = None, *, limit: int | None = None) -> int:
        """How many documents match, capped by a positive ``limit``."""
        _check_limit(limit)
        return await self._store._run(lambda e: (e.count(self._ns, filter, limit), []), queries=(filter,))

    async def find_one_and_update(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        upsert: bool = False,
        return_new: bool = False,
        guard: WriteGuard | None = None,
    ) -> dict[str, Any] | None:
        """Update the first match by ``sort``; the pre-image, or the post-image with ``return_new``."""
        return await self._find_and_modify(
            filter, update, projection, sort, upsert, return_new, replace=False, guard=guard
        )

    async def find_one_and_replace(
        self,
        filter: Filter,
        replacement: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        upsert: bool = False,
        return_new: bool = False,
        guard: WriteGuard | None = None,
    ) -> dict[str, Any] | None:
        """Replace the first match by ``sort``; the pre-image, or the post-image with ``return_new``."""
        return await self._find_and_modify(
            filter, replacement, projection, sort, upsert, return_new, replace=True, guard=guard
        )

    async def _find_and_modify(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        sort: Sort | None,
        upsert: bool,
        return_new: bool,
        *,
        replace: bool,
        guard: WriteGuard | None = None,
    ) -> dict[str, Any] | None:
        proj = Projection(projection)

        def op(e: Engine) -> tuple[dict[str, Any] | None, list[Change]]:
            _, pre, post, changes = e.update(
                self._ns, filter, update, multi=False, upsert=upsert, array_filters=None, sort=sort,
                replace_only=replace, guard=_let_through(guard),
            )  # fmt: skip
            image = post if return_new else pre
            return (proj.apply(decode(image)) if image is not None else None), changes

        return await self._store._run(op, queries=(filter, update, projection, sort))

    async def find_one_and_delete(
        self,
        filter: Filter,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        guard: WriteGuard | None = None,
    ) -> dict[str, Any] | None:
        """Delete the first match by ``sort`` and return it (projected)."""
        proj = Projection(projection)

        def op(e: Engine) -> tuple[dict[str, Any] | None, list[Change]]:
            _, pre, changes = e.delete(self._ns, filter, multi=False, sort=sort, guard=_let_through(guard))
            return (proj.apply(decode(pre)) if pre is not None else None), changes

        return await self._store._run(op, queries=(filter, projection, sort))

    def watch(
        self, *, ids: Sequence[Any] | None = None, filter: Filter | None = None, pre_images: bool = False
    ) -> EmbeddedChangeStream:
        """Change events from now on (see ``DocumentCollection.watch``); call from a running event loop."""
        return self._store._watch(self._ns, ids, filter, pre_images)


class _GuardRaised(Exception):
    """Carries what a write guard raised past the store's net for the borrowed engine's errors."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _let_through(guard: WriteGuard | None) -> WriteGuard | None:
    """``guard`` with its exceptions marked as its own, so that ``_run`` hands them back unchanged."""
    if guard is None:
        return None

    def checked(pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]]) -> None:
        try:
            guard(pairs)
        except Exception as exc:
            raise _GuardRaised(exc) from None

    return checked


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise DocumentStoreError("limit must be an integer")
