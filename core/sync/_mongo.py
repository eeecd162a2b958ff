"""The blocking MongoDB client: CRUD, aggregation and change streams as plain calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reactivex import Observable

import appusers

from .._mongo import ChangeEvent, DeleteResult, InsertManyResult, InsertOneResult, UpdateResult
from ._runner import Runner, same

if TYPE_CHECKING:
    from types import TracebackType

    from ._user import User

__all__ = ["ChangeStream", "MongoClient", "MongoCollection", "MongoDatabase"]


class MongoClient:
    """The remote MongoDB service ``service_name`` as one user; from ``user.mongo_client(name)``."""

    __slots__ = ("_client", "_runner", "_user")

    def __init__(self, runner: Runner, user: User, client: appusers.MongoClient) -> None:
        self._runner = runner
        self._user = user
        self._client = client

    @property
    def service_name(self) -> str:
        return self._client.service_name

    @property
    def user(self) -> User:
        return self._user

    def db(self, name: str) -> MongoDatabase:
        """The database ``name``."""
        return MongoDatabase(self, name)

    def __repr__(self) -> str:
        return repr(self._client)


class MongoDatabase:
    """One database of a :class:`MongoClient`."""

    __slots__ = ("client", "name")

    def __init__(self, client: MongoClient, name: str) -> None:
        self.client = client
        self.name = client._client.db(name).name  # validated by the async client

    def collection(self, name: str) -> MongoCollection:
        """The collection ``name`` of this database."""
        return MongoCollection(self, name)

    def __repr__(self) -> str:
        return f"<MongoDatabase {self.name!r} service={self.client.service_name!r}>"


class MongoCollection:
    """One collection: the MongoDB CRUD operations, aggregation and change streams, blocking.

    Same arguments and results as :class:`appusers.MongoCollection`; every method takes
    ``timeout=`` (seconds; default: the App's).
    """

    __slots__ = ("_collection", "_runner", "database")

    def __init__(self, database: MongoDatabase, name: str) -> None:
        self.database = database
        self._runner = database.client._runner
        client: appusers.MongoClient = database.client._client
        self._collection = client.db(database.name).collection(name)

    @property
    def name(self) -> str:
        return self._collection.name

    @property
    def service_name(self) -> str:
        return self._collection.service_name

    @property
    def user(self) -> User:
        return self.database.client.user

    def __repr__(self) -> str:
        return repr(self._collection)

    # -- reading ------------------------------------------------------------------------

    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """The documents matching ``filter`` (all by default), sorted, projected, limited."""
        return self._runner.run(
            self._collection.find(filter, projection=projection, sort=sort, limit=limit, timeout=timeout)
        )

    def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """The first document matching ``filter`` (in ``sort`` order), or ``None``."""
        return self._runner.run(
            self._collection.find_one(filter, projection=projection, sort=sort, timeout=timeout)
        )

    def count(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """How many documents match ``filter`` (counting stops at ``limit``, if given)."""
        return self._runner.run(self._collection.count(filter, limit=limit, timeout=timeout))

    def aggregate(self, pipeline: Sequence[Mapping[str, Any]], *, timeout: float | None = None) -> list[Any]:
        """The result of the aggregation ``pipeline`` (a list of stages)."""
        return self._runner.run(self._collection.aggregate(pipeline, timeout=timeout))

    # -- writing ------------------------------------------------------------------------

    def insert_one(self, document: Mapping[str, Any], *, timeout: float | None = None) -> InsertOneResult:
        """Insert ``document``; the server adds an ObjectId ``_id`` if it has none."""
        return self._runner.run(self._collection.insert_one(document, timeout=timeout))

    def insert_many(
        self, documents: Sequence[Mapping[str, Any]], *, timeout: float | None = None
    ) -> InsertManyResult:
        """Insert ``documents`` (a non-empty list), in order."""
        return self._runner.run(self._collection.insert_many(documents, timeout=timeout))

    def update_one(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        timeout: float | None = None,
    ) -> UpdateResult:
        """Apply ``update`` to the first document matching ``filter`` (``upsert``: or create one)."""
        return self._runner.run(self._collection.update_one(
            filter, update, upsert=upsert, array_filters=array_filters, timeout=timeout
        ))

    def update_many(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        timeout: float | None = None,
    ) -> UpdateResult:
        """Apply ``update`` to every document matching ``filter``."""
        return self._runner.run(self._collection.update_many(
            filter, update, upsert=upsert, array_filters=array_filters, timeout=timeout
        ))

    def delete_one(self, filter: Mapping[str, Any], *, timeout: float | None = None) -> DeleteResult:
        """Delete the first document matching ``filter`` (``{}``: any one document)."""
        return self._runner.run(self._collection.delete_one(filter, timeout=timeout))

    def delete_many(self, filter: Mapping[str, Any], *, timeout: float | None = None) -> DeleteResult:
        """Delete every document matching ``filter`` (``{}``: all of them)."""
        return self._runner.run(self._collection.delete_many(filter, timeout=timeout))

    # -- find and modify ---------------------------------------------------------------

    def find_one_and_update(
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
        """Update the first match of ``filter``; return it as it was before (or after)."""
        return self._runner.run(self._collection.find_one_and_update(
            filter, update, projection=projection, sort=sort, upsert=upsert,
            return_new_document=return_new_document, timeout=timeout,
        ))

    def find_one_and_replace(
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
        """Replace the first match of ``filter``; return it as it was before (or after)."""
        return self._runner.run(self._collection.find_one_and_replace(
            filter, replacement, projection=projection, sort=sort, upsert=upsert,
            return_new_document=return_new_document, timeout=timeout,
        ))

    def find_one_and_delete(
        self,
        filter: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Delete the first match of ``filter`` (in ``sort`` order); return it, or ``None``."""
        return self._runner.run(self._collection.find_one_and_delete(
            filter, projection=projection, sort=sort, timeout=timeout
        ))

    # -- change streams ------------------------------------------------------------------

    def watch(
        self,
        *,
        ids: Sequence[Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> ChangeStream:
        """The changes to this collection from now on, as a blocking iterator::

            with orders.watch(ids=[order_id]) as changes:
                for change in changes:
                    ...

        Arguments as :meth:`appusers.MongoCollection.watch`.
        """
        stream = self._collection.watch(ids=ids, filter=filter, timeout=timeout, idle_timeout=idle_timeout)
        return ChangeStream(self._runner, stream)

    def watch_changes(
        self,
        *,
        ids: Sequence[Any] | None = None,
        filter: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> Observable[ChangeEvent]:
        """:meth:`watch` as a cold Rx observable (each subscription opens its own stream;
        disposing it closes the stream). Subscribe from any thread; values arrive on the
        App's loop thread."""
        source = self._collection.watch_changes(ids=ids, filter=filter, timeout=timeout,
                                                idle_timeout=idle_timeout)
        return self._runner.observe(lambda: source, same)


class ChangeStream:
    """A blocking iterator of :class:`appusers.ChangeEvent` and a context manager (``with``).

    It opens on ``with`` or on the first ``next()``, and closes when the block exits,
    when the events end or fail, or on :meth:`close`. Read it from one thread at a time.
    """

    __slots__ = ("_runner", "_stream")

    def __init__(self, runner: Runner, stream: appusers.ChangeStream) -> None:
        self._runner = runner
        self._stream = stream

    def __repr__(self) -> str:
        return repr(self._stream)

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def __enter__(self) -> ChangeStream:
        self._runner.run(self._stream._open())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> ChangeStream:
        return self

    def __next__(self) -> ChangeEvent:
        event = self._runner.run(_next_or_none(self._stream))
        if event is None:
            raise StopIteration
        return event

    def close(self) -> None:
        """Close the HTTP stream. Idempotent; nothing to do once the App is closed (that
        closed every stream)."""
        if self._runner.loop.running:
            self._runner.run(self._stream.aclose())


async def _next_or_none(stream: appusers.ChangeStream) -> ChangeEvent | None:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
