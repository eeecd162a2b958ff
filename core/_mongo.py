"""``user.mongo_client(service)``: a remote MongoDB service, through ``functions/call``.

::

    orders = user.mongo_client("mongodb-atlas").db("shop").collection("orders")
    await orders.insert_one({"status": "open", "total": Decimal128("9.90")})
    open_orders = await orders.find({"status": "open"}, sort={"created": -1}, limit=20)
    async with orders.watch(filter={"operationType": "insert"}) as changes:
        async for change in changes:
            print(change.operation_type, change.full_document)

Every operation is one ``functions/call`` with ``service`` set to the service name
and one argument document (App Services' MongoDB service call), sent as canonical Extended JSON, so
``ObjectId``, ``datetime``, ``Decimal128``, ``Int64``, ``Binary`` and ``UUID`` keep
their types both ways. Optional keys are left out of the argument document unless
the caller gave them. Bad input raises :class:`~appusers.errors.InvalidArgumentError`
before anything is sent.

``watch`` is App Services' streaming call: a GET whose request document
travels base64-encoded in the query string and whose access token travels in the
``Authorization`` header, never in the URL. It needs a transport with
``open_stream`` (:class:`~appusers.transport.StreamingTransport`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote, urlsplit

import attrs
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from . import _ejson
from ._sse import SseParser
from .errors import (
    AppClosedError,
    ClientError,
    InvalidArgumentError,
    MalformedJsonError,
    MissingJsonKeyError,
    ResponseError,
    ServiceError,
    service_error_from_body,
)
from .transport import Request, Response, StreamingTransport, StreamResponse

if TYPE_CHECKING:
    from ._pipeline import Principal

__all__ = [
    "ChangeEvent",
    "ChangeStream",
    "DeleteResult",
    "InsertManyResult",
    "InsertOneResult",
    "MongoClient",
    "MongoCollection",
    "MongoDatabase",
    "UpdateResult",
]

_log = logging.getLogger("appusers")

# MongoDB's own rules (plus NUL): a database name becomes a directory name on the server.
_DB_FORBIDDEN: Final = frozenset('/\\. "$\x00')
_COLLECTION_FORBIDDEN: Final = frozenset("$\x00")
# How much of a malformed event a message quotes: enough to debug, not a whole document.
_QUOTE_LIMIT: Final = 200


# -- results ------------------------------------------------------------------------------


@attrs.frozen
class InsertOneResult:
    """What ``insert_one`` did: the ``_id`` of the new document (server-generated if absent)."""

    inserted_id: Any


@attrs.frozen
class InsertManyResult:
    """What ``insert_many`` did: the ``_id`` of each new document, in input order."""

    inserted_ids: tuple[Any, ...]


@attrs.frozen
class UpdateResult:
    """What ``update_one``/``update_many`` did.

    ``upserted_id`` is the ``_id`` of the document an upsert created, else ``None``.
    """

    matched_count: int
    modified_count: int
    upserted_id: Any = None


@attrs.frozen
class DeleteResult:
    """What ``delete_one``/``delete_many`` did."""

    deleted_count: int


@attrs.frozen
class ChangeEvent:
    """One MongoDB change event from :meth:`MongoCollection.watch`.

    ``operation_type`` is ``"insert"``, ``"update"``, ``"replace"``, ``"delete"``,
    ``"drop"``, ``"rename"``, ``"dropDatabase"`` or ``"invalidate"``;
    ``document_key`` is ``{"_id": ...}`` of the changed document; ``full_document`` is
    there for inserts and replaces (and updates when the server looks it up);
    ``update_description`` (``updatedFields``, ``removedFields``) for updates;
    ``namespace`` is ``{"db": ..., "coll": ...}``; ``resume_token`` is the event's
    ``_id``. ``raw`` is the whole event as the server sent it.
    """

    operation_type: str
    document_key: Mapping[str, Any] | None
    full_document: Mapping[str, Any] | None
    update_description: Mapping[str, Any] | None
    namespace: Mapping[str, Any] | None
    cluster_time: Any
    resume_token: Any
    raw: Mapping[str, Any] = attrs.field(repr=False)

    @property
    def document_id(self) -> Any:
        """``document_key["_id"]``: the ``_id`` of the changed document (``None`` if unknown)."""
        return None if self.document_key is None else self.document_key.get("_id")

    @classmethod
    def from_document(cls, raw: Mapping[str, Any]) -> ChangeEvent:
        """The event a decoded change-event document describes."""

        def mapping(key: str) -> Mapping[str, Any] | None:
            value = raw.get(key)
            return value if isinstance(value, Mapping) else None

        kind = raw.get("operationType")
        return cls(
            operation_type=kind if isinstance(kind, str) else "",
            document_key=mapping("documentKey"),
            full_document=mapping("fullDocument"),
            update_description=mapping("updateDescription"),
            namespace=mapping("ns"),
            cluster_time=raw.get("clusterTime"),
            resume_token=raw.get("_id"),
            raw=raw,
        )


# -- argument checks (all before any I/O) ----------------------------------------------


def _check_name(value: object, what: str, forbidden: frozenset[str]) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"the {what} name must be a non-empty string")
    bad = sorted(forbidden.intersection(value))
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidArgumentError(f"the {what} name must not contain {shown}")
    return value


def _document(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{what} must be a mapping (a document), not {type(value).__name__}")
    return dict(value)


def _optional_document(value: object, what: str) -> dict[str, Any] | None:
    return None if value is None else _document(value, what)


def _documents(value: object, what: str) -> list[dict[str, Any]]:
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Sequence):
        raise InvalidArgumentError(f"{what} must be a list, not {type(value).__name__}")
    return [_document(item, f"each item of {what}") for item in value]


def _limit(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError("limit must be an integer >= 0 (0: no limit)")
    return int(value)


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be True or False")
    return value


def _timeout(value: object, what: str = "timeout") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        value > 0 and math.isfinite(value)
    ):
        raise InvalidArgumentError(f"{what} must be a positive number of seconds or None")
    return float(value)


def _operators(value: object, what: str) -> dict[str, Any]:
    update = _document(value, what)
    if not update or not all(isinstance(key, str) and key.startswith("$") for key in update):
        raise InvalidArgumentError(f"{what} must be a non-empty document of update operators such as $set")
    return update


def _update(value: object) -> dict[str, Any] | list[dict[str, Any]]:
    """An operator document, or an aggregation pipeline (a list of stages)."""
    if isinstance(value, Mapping):
        return _operators(value, "update")
    stages = _documents(value, "update")
    if not stages:
        raise InvalidArgumentError("an update pipeline must have at least one stage")
    return stages


def _replacement(value: object) -> dict[str, Any]:
    replacement = _document(value, "replacement")
    if any(isinstance(key, str) and key.startswith("$") for key in replacement):
        raise InvalidArgumentError("a replacement document must not contain update operators ($...)")
    return replacement


def _quote(text: str) -> str:
    return text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "..."


# -- results checks -------------------------------------------------------------------


def _result_document(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ResponseError(f"the {what} result is not a document")
    return data


def _count(data: Mapping[str, Any], key: str) -> int:
    if key not in data:
        raise MissingJsonKeyError(key)
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResponseError(f"{key} is not an integer")
    return int(value)


def _found(data: Any, what: str) -> dict[str, Any] | None:
    return None if data is None else _result_document(data, what)


def _many(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise ResponseError(f"the {what} result is not an array")
    return data


# -- client, database, collection ---------------------------------------------------------


_READS = frozenset({"find", "findOne", "count", "aggregate"})


def _is_read(name: str, arg: Mapping[str, Any]) -> bool:
    if name not in _READS:
        return False
    if name == "aggregate":
        stages = arg.get("pipeline")
        return isinstance(stages, list) and not any(
            isinstance(stage, Mapping) and ("$out" in stage or "$merge" in stage) for stage in stages
        )
    return True


class MongoClient:
    """The remote MongoDB service ``service_name`` as seen by one user.

    Get it with ``user.mongo_client("mongodb-atlas")``; it holds no connection.
    ``retry_reads=True`` declares its reads (``find``, ``find_one``, ``count``, an
    ``aggregate`` without ``$out``/``$merge``) safe to repeat, so the App's ``RetryPolicy``
    may retry them; writes are never retried.
    """

    __slots__ = ("_user", "retry_reads", "service_name")

    def __init__(self, user: Principal, service_name: str, *, retry_reads: bool = False) -> None:
        if not isinstance(service_name, str) or not service_name:
            raise InvalidArgumentError("the service name must be a non-empty string")
        if not isinstance(retry_reads, bool):
            raise InvalidArgumentError("retry_reads must be True or False")
        self._user = user
        self.service_name = service_name
        self.retry_reads = retry_reads

    @property
    def user(self) -> Principal:
        return self._user

    def db(self, name: str) -> MongoDatabase:
        """The database ``name``."""
        return MongoDatabase(self, name)

    def __repr__(self) -> str:
        return f"<MongoClient service={self.service_name!r} user={self._user.id!r}>"


class MongoDatabase:
    """One database of a :class:`MongoClient`."""

    __slots__ = ("client", "name")

    def __init__(self, client: MongoClient, name: str) -> None:
        self.client = client
        self.name = _check_name(name, "database", _DB_FORBIDDEN)

    def collection(self, name: str) -> MongoCollection:
        """The collection ``name`` of this database."""
        return MongoCollection(self, name)

    def __repr__(self) -> str:
        return f"<MongoDatabase {self.name!r} service={self.client.service_name!r}>"


class MongoCollection:
    """One collection: the MongoDB CRUD operations, aggregation and change streams.

    Filters, projections, sorts and documents are mappings of Python/BSON values.
    Every method takes ``timeout=`` (seconds; default: the App's).
    """

    __slots__ = ("database", "name")

    def __init__(self, database: MongoDatabase, name: str) -> None:
        self.database = database
        self.name = _check_name(name, "collection", _COLLECTION_FORBIDDEN)

    @property
    def service_name(self) -> str:
        return self.database.client.service_name

    @property
    def user(self) -> Principal:
        return self.database.client.user

    def __repr__(self) -> str:
        return (
            f"<MongoCollection {self.database.name}.{self.name} "
            f"service={self.service_name!r}>"
        )

    async def _call(self, name: str, arg: dict[str, Any], timeout: float | None) -> Any:
        document: dict[str, Any] = {"database": self.database.name, "collection": self.name}
        document.update(arg)
        user = self.user
        idempotent = self.database.client.retry_reads and _is_read(name, arg)
        return await user._pipeline.call_function(
            user, name, (document,), timeout=timeout, service=self.service_name, idempotent=idempotent
        )

    # -- reading ------------------------------------------------------------------------

    async def find(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """The documents matching ``filter`` (all by default), sorted, projected, limited."""
        arg: dict[str, Any] = {"query": _optional_document(filter, "filter") or {}}
        if projection is not None:
            arg["project"] = _document(projection, "projection")
        if sort is not None:
            arg["sort"] = _document(sort, "sort")
        if (checked := _limit(limit)) is not None:
            arg["limit"] = checked
        found = _many(await self._call("find", arg, _timeout(timeout)), "find")
        return [_result_document(item, "find") for item in found]

    async def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """The first document matching ``filter`` (in ``sort`` order), or ``None``."""
        arg: dict[str, Any] = {"query": _optional_document(filter, "filter") or {}}
        if projection is not None:
            arg["project"] = _document(projection, "projection")
        if sort is not None:
            arg["sort"] = _document(sort, "sort")
        return _found(await self._call("findOne", arg, _timeout(timeout)), "findOne")

    async def count(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """How many documents match ``filter`` (counting stops at ``limit``, if given)."""
        arg: dict[str, Any] = {"query": _optional_document(filter, "filter") or {}}
        if (checked := _limit(limit)) is not None:
            arg["limit"] = checked
        result = await self._call("count", arg, _timeout(timeout))
        if isinstance(result, bool) or not isinstance(result, int):
            raise ResponseError("the count result is not an integer")
        return int(result)

    async def aggregate(
        self, pipeline: Sequence[Mapping[str, Any]], *, timeout: float | None = None
    ) -> list[Any]:
        """The result of the aggregation ``pipeline`` (a list of stages)."""
        arg = {"pipeline": _documents(pipeline, "pipeline")}
        return _many(await self._call("aggregate", arg, _timeout(timeout)), "aggregate")

    # -- writing ------------------------------------------------------------------------

    async def insert_one(
        self, document: Mapping[str, Any], *, timeout: float | None = None
    ) -> InsertOneResult:
        """Insert ``document``; the server adds an ObjectId ``_id`` if it has none."""
        arg = {"document": _document(document, "document")}
        data = _result_document(await self._call("insertOne", arg, _timeout(timeout)), "insertOne")
        if "insertedId" not in data:
            raise MissingJsonKeyError("insertedId")
        return InsertOneResult(data["insertedId"])

    async def insert_many(
        self, documents: Sequence[Mapping[str, Any]], *, timeout: float | None = None
    ) -> InsertManyResult:
        """Insert ``documents`` (a non-empty list), in order."""
        checked = _documents(documents, "documents")
        if not checked:
            raise InvalidArgumentError("documents must be a non-empty list")
        data = _result_document(
            await self._call("insertMany", {"documents": checked}, _timeout(timeout)), "insertMany"
        )
        ids = data.get("insertedIds")
        if not isinstance(ids, list):
            raise MissingJsonKeyError("insertedIds")
        return InsertManyResult(tuple(ids))

    async def update_one(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        timeout: float | None = None,
    ) -> UpdateResult:
        """Apply ``update`` (operators, or a pipeline) to the first document matching ``filter``.

        With ``upsert=True`` a document is created when none matches.
        """
        return await self._update("updateOne", filter, update, upsert, array_filters, timeout)

    async def update_many(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        timeout: float | None = None,
    ) -> UpdateResult:
        """Apply ``update`` (operators, or a pipeline) to every document matching ``filter``."""
        return await self._update("updateMany", filter, update, upsert, array_filters, timeout)

    async def _update(
        self,
        name: str,
        filter: object,
        update: object,
        upsert: object,
        array_filters: object,
        timeout: object,
    ) -> UpdateResult:
        arg: dict[str, Any] = {"query": _document(filter, "filter"), "update": _update(update)}
        if _flag(upsert, "upsert"):
            arg["upsert"] = True
        if array_filters is not None:
            arg["arrayFilters"] = _documents(array_filters, "array_filters")
        data = _result_document(await self._call(name, arg, _timeout(timeout)), name)
        return UpdateResult(
            _count(data, "matchedCount"), _count(data, "modifiedCount"), data.get("upsertedId")
        )

    async def delete_one(self, filter: Mapping[str, Any], *, timeout: float | None = None) -> DeleteResult:
        """Delete the first document matching ``filter`` (``{}``: any one document)."""
        return await self._delete("deleteOne", filter, timeout)

    async def delete_many(self, filter: Mapping[str, Any], *, timeout: float | None = None) -> DeleteResult:
        """Delete every document matching ``filter`` (``{}``: all of them)."""
        return await self._delete("deleteMany", filter, timeout)

    async def _delete(self, name: str, filter: object, timeout: object) -> DeleteResult:
        arg = {"query": _document(filter, "filter")}
        data = _result_document(await self._call(name, arg, _timeout(timeout)), name)
        return DeleteResult(_count(data, "deletedCount"))

    # -- find and modify ---------------------------------------------------------------

    async def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        upsert: bool = False,
        return_new_document: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Update the first match of ``filter``; return it as it was before (or after, with
        ``return_new_document=True``), or ``None`` when nothing matched and nothing was upserted."""
        arg = {"filter": _document(filter, "filter"), "update": _operators(update, "update")}
        return await self._find_and_modify(
            "findOneAndUpdate", arg, projection, sort, upsert, return_new_document, timeout
        )

    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        upsert: bool = False,
        return_new_document: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Replace the first match of ``filter`` (its ``_id`` is kept); return it as it was
        before (or after, with ``return_new_document=True``), or ``None``."""
        # The wire name of the replacement is "update", as realm-web and core send it.
        arg = {"filter": _document(filter, "filter"), "update": _replacement(replacement)}
        return await self._find_and_modify(
            "findOneAndReplace", arg, projection, sort, upsert, return_new_document, timeout
        )

    async def find_one_and_delete(
        self,
        filter: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Delete the first match of ``filter`` (in ``sort`` order); return it, or ``None``."""
        arg = {"filter": _document(filter, "filter")}
        return await self._find_and_modify("findOneAndDelete", arg, projection, sort, False, False, timeout)

    async def _find_and_modify(
        self,
        name: str,
        arg: dict[str, Any],
        projection: object,
        sort: object,
        upsert: object,
        return_new_document: object,
        timeout: object,
    ) -> dict[str, Any] | None:
        if sort is not None:
            arg["sort"] = _document(sort, "sort")
        if projection is not None:
            arg["projection"] = _document(projection, "projection")
        if _flag(upsert, "upsert"):
            arg["upsert"] = True
        if _flag(return_new_document, "return_new_document"):
            arg["returnNewDocument"] = True
        return _found(await self._call(name, arg, _timeout(timeout)), name)

    # -- change streams ------------------------------------------------------------------

    def watch(
        self,
        *,
        ids: Sequence[Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> ChangeStream:
        """The changes to this collection from now on, as an async iterator of :class:`ChangeEvent`.

        ``ids`` restricts them to documents with those ``_id`` values; ``filter`` is a
        query on the change events themselves (e.g. ``{"operationType": "insert"}``);
        not both. ``timeout`` bounds opening the stream; ``idle_timeout`` (default:
        none) the wait for each next piece of data (the local server sends a
        keep-alive every 15 s). The stream opens when entered or first iterated and
        closes when the block or the loop ends, breaks, fails or is cancelled::

            async with orders.watch(ids=[order_id]) as changes:
                async for change in changes:
                    ...
        """
        baas_request = _baas_request(self, ids, filter)
        return ChangeStream(self, baas_request, _timeout(timeout), _timeout(idle_timeout, "idle_timeout"))

    def watch_changes(
        self,
        *,
        ids: Sequence[Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> Observable[ChangeEvent]:
        """:meth:`watch` as a cold Rx observable: each subscription opens its own stream,
        disposing it closes the stream. Subscribe from the App's event loop.

        The stream's end completes the observable; its failure (a server error
        event, a dropped connection, the App closing) is sent as ``on_error``. An
        exception raised by ``on_next`` is logged and does not stop the stream.
        """
        baas_request = _baas_request(self, ids, filter)
        checked_timeout = _timeout(timeout)
        checked_idle = _timeout(idle_timeout, "idle_timeout")

        def subscribe(
            observer: abc.ObserverBase[ChangeEvent], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                observer.on_error(ClientError("subscribe to watch_changes() from a running event loop"))
                return Disposable()
            stream = ChangeStream(self, baas_request, checked_timeout, checked_idle)
            disposed = False

            async def pump() -> None:
                try:
                    async with stream:
                        async for event in stream:
                            if disposed:
                                return
                            try:
                                observer.on_next(event)
                            except Exception:
                                _log.exception("a watch subscriber raised while handling a change event")
                except asyncio.CancelledError:
                    if not disposed:
                        # Not by dispose(): the App closing (it cancels its tasks) or the loop ending.
                        observer.on_error(AppClosedError("the App was closed while watching"))
                    raise
                except Exception as exc:
                    if not disposed:
                        observer.on_error(exc)
                else:
                    if not disposed:
                        observer.on_completed()

            task = loop.create_task(pump())
            # The App cancels (and awaits) its tasks when it closes: no stream outlives it.
            tasks = self.user._pipeline.tasks
            tasks.add(task)
            task.add_done_callback(tasks.discard)

            def dispose() -> None:
                nonlocal disposed
                disposed = True
                task.cancel()

            return Disposable(dispose)

        return Observable(subscribe)


def _baas_request(collection: MongoCollection, ids: object, filter: object) -> str:
    """The ``baas_request`` query value of a ``watch`` call (App Services' streaming call)."""
    argument: dict[str, Any] = {"database": collection.database.name, "collection": collection.name}
    if ids is not None and filter is not None:
        raise InvalidArgumentError("watch takes ids or filter, not both")
    if ids is not None:
        if isinstance(ids, str | bytes | bytearray | Mapping) or not isinstance(ids, Sequence):
            raise InvalidArgumentError(f"ids must be a list of _id values, not {type(ids).__name__}")
        argument["ids"] = list(ids)
    elif filter is not None:
        argument["filter"] = _document(filter, "filter")
    request = {"name": "watch", "arguments": [argument], "service": collection.service_name}
    try:
        encoded = _ejson.dumps(request).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"watch arguments cannot be encoded as Extended JSON: {exc}") from None
    # Standard base64, then percent-encoded: '+', '/' and '=' go as %2B, %2F, %3D.
    return quote(base64.b64encode(encoded).decode("ascii"), safe="")


# -- the streaming call -----------------------------------------------------------------

_State = Literal["new", "open", "closed"]
# Close jobs of streams dropped without being closed (see ChangeStream.__del__).
_closing: set[asyncio.Task[None]] = set()


def _close_dropped(stack: contextlib.AsyncExitStack) -> None:
    task = asyncio.get_running_loop().create_task(stack.aclose())
    _closing.add(task)

    def done(finished: asyncio.Task[None]) -> None:
        _closing.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            _log.debug("closing a dropped change stream failed: %s", type(finished.exception()).__name__)

    task.add_done_callback(done)


class ChangeStream:
    """An open (or not yet opened) change stream; from :meth:`MongoCollection.watch`.

    An async iterator of :class:`ChangeEvent` and an async context manager. It
    opens on ``async with`` or on the first ``__anext__``, and closes when the
    block exits, when the events end or fail, when the reading task is cancelled,
    or on :meth:`aclose`. A stream abandoned by ``break`` in a plain ``async for``
    is closed on the next turn of the event loop. A closed stream stays closed:
    call ``watch()`` again for a new one.

    Opening refreshes the access token first if it is about to expire, and once
    more (with one retry) if the server answers 401.
    """

    def __init__(
        self,
        collection: MongoCollection,
        baas_request: str,
        timeout: float | None,
        idle_timeout: float | None,
    ) -> None:
        self.collection = collection
        self._baas_request = baas_request
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._state: _State = "new"
        self._stack: contextlib.AsyncExitStack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lines: AsyncIterator[bytes] | None = None
        self._parser = SseParser()
        self._where = ""

    def __repr__(self) -> str:
        c = self.collection
        return f"<ChangeStream {c.database.name}.{c.name} {self._state}>"

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    async def __aenter__(self) -> ChangeStream:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> ChangeEvent:
        if self._state == "closed":
            raise StopAsyncIteration
        try:
            if self._state == "new":
                await self._open()
            event = await self._next_event()
        except BaseException:
            # Failure or cancellation: the connection goes now, not when the loop collects us.
            await self.aclose()
            raise
        if event is None:
            await self.aclose()
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Close the HTTP stream. Idempotent."""
        self._state = "closed"
        self._lines = None
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    def __del__(self) -> None:
        # A plain ``async for`` that breaks drops its iterator without closing it; the
        # iterator cannot await here, so the close is handed to the loop.
        stack = getattr(self, "_stack", None)
        loop = getattr(self, "_loop", None)
        if stack is None or loop is None or loop.is_closed():
            return
        self._stack = None
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(_close_dropped, stack)

    # -- opening -------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._state == "closed":
            raise ClientError("this change stream is closed; call watch() again for a new one")
        if self._state == "open":
            return
        collection = self.collection
        user = collection.user
        pipeline = user._pipeline
        pipeline.require_logged_in(user)
        transport = pipeline.transport
        if not isinstance(transport, StreamingTransport):
            raise InvalidArgumentError(
                f"watch needs a transport with open_stream() (a StreamingTransport); "
                f"{type(transport).__name__} has none"
            )
        await pipeline.ensure_open()
        base = await pipeline.url("/functions/call", app_scoped=True)
        url = f"{base}?baas_request={self._baas_request}"
        parts = urlsplit(base)
        self._where = f"{parts.scheme}://{parts.netloc}{parts.path}"
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        self._loop = asyncio.get_running_loop()
        try:
            stream = await self._connect(stack, transport, url)
        except BaseException:
            self._stack = None
            self._state = "closed"
            await stack.aclose()
            raise
        self._lines = stream.iter_lines()
        self._state = "open"

    async def _connect(
        self, stack: contextlib.AsyncExitStack, transport: StreamingTransport, url: str
    ) -> StreamResponse:
        """The open event stream, after at most one refresh and one retry (the rule of
        ``Pipeline.request`` with the access token); raises the typed error of a failed response."""
        user = self.collection.user
        pipeline = user._pipeline
        refreshed = False
        if user._expired_soon(pipeline.refresh_leeway):
            await pipeline.refresh_access_token(user)
            refreshed = True
        pipeline.require_logged_in(user)
        sent = user.access_token
        assert sent is not None
        stream = await self._enter(stack, transport, url, sent)
        if stream.status == 401:
            rejected = await self._as_response(stream)
            await stack.aclose()
            if user.access_token == sent and not refreshed and user.is_logged_in:
                await pipeline.refresh_access_token(user)
            current = user.access_token
            if current is None or current == sent:
                pipeline.parse(rejected, "GET", url)  # raises the 401's typed error
            assert current is not None
            stream = await self._enter(stack, transport, url, current)
        media_type = stream.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not 200 <= stream.status < 300 or media_type == "application/json":
            # A failure, or a 2xx carrying an error body (which core reads as an error): the typed error.
            pipeline.parse(await self._as_response(stream), "GET", url)
        if media_type != "text/event-stream":
            raise ResponseError(
                f"GET {self._where}: expected an event stream, got {media_type or 'no content type'!r}"
            )
        return stream

    async def _enter(
        self, stack: contextlib.AsyncExitStack, transport: StreamingTransport, url: str, token: str
    ) -> StreamResponse:
        pipeline = self.collection.user._pipeline
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
        timeout = self._timeout if self._timeout is not None else pipeline.timeout
        _log.debug("GET %s (stream)", self._where)
        request = Request("GET", url, headers, None, timeout)
        stream = await stack.enter_async_context(
            transport.open_stream(request, idle_timeout=self._idle_timeout)
        )
        _log.debug("GET %s (stream) -> %d", self._where, stream.status)
        return stream

    @staticmethod
    async def _as_response(stream: StreamResponse) -> Response:
        return Response(stream.status, stream.headers, await stream.read(), stream.url)

    # -- reading ------------------------------------------------------------------------

    async def _next_event(self) -> ChangeEvent | None:
        lines = self._lines
        assert lines is not None
        parser = self._parser
        while True:
            try:
                line = await anext(lines)
            except StopAsyncIteration:
                return None  # the server ended the stream
            sse = parser.feed(line)
            if sse is None:
                continue
            if sse.type == "message":
                return self._change_event(sse.data)
            if sse.type == "error":
                raise self._stream_error(sse.data)
            # Other event types are reserved: ignored, as both reference clients do.

    def _change_event(self, data: str) -> ChangeEvent:
        try:
            document = _ejson.loads(data)
        except ValueError:  # _ejson.loads raises only ValueError
            document = None
        if not isinstance(document, dict):
            raise MalformedJsonError(f"server returned malformed event: {_quote(data)}")
        return ChangeEvent.from_document(document)

    def _stream_error(self, data: str) -> ServiceError | MalformedJsonError:
        try:
            body = _ejson.loads(data)
        except ValueError:  # _ejson.loads raises only ValueError
            body = None
        error = service_error_from_body(body, status=200, method="GET", url=self._where)
        if error is None:
            return MalformedJsonError(f"server returned malformed error event: {_quote(data)}")
        return error
