"""``PyMongoDocumentStore``: the same seam over a real MongoDB, through pymongo's ``AsyncMongoClient``.

UNTESTED AGAINST A LIVE SERVER: no MongoDB runs where this was written. It is
kept thin on purpose (each method is one driver call) and type-checked; the
path to several server processes sharing data and change streams is to run
them all against one MongoDB replica set with this store.

A write with a guard (the access rules check every write a user makes, on its before and
after images, before it commits) runs in a transaction: read the matches, write them, read
them back, call the guard, and commit only if it returns; anything it raises aborts the
transaction and reaches the caller. Transactions, like change streams, need a replica set.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._codec import id_key
from ._errors import DocumentStoreError
from ._projection import Projection
from ._protocol import Filter, Sort, UpdateResult, WriteGuard

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

__all__ = ["MIN_PYMONGO", "PyMongoDocumentStore", "open_pymongo_store"]

#: ``AsyncMongoClient`` is stable from pymongo 4.10 on (4.9 had it as a preview).
MIN_PYMONGO = (4, 10)


def _scrub(text: str, uri: str) -> str:
    """``text`` without the URI's user-info (pymongo may quote what it was given)."""
    userinfo = uri.split("://", 1)[-1].rpartition("@")[0]
    return text.replace(userinfo, "***") if userinfo else text


async def open_pymongo_store(uri: str, *, timeout: float, shown: str) -> PyMongoDocumentStore:
    """A store on the MongoDB at ``uri``, after one ``ping`` answered within ``timeout`` seconds.

    Raises :class:`DocumentStoreError` with a one-line reason (``shown``: the URI as it may be
    printed, without its password) when pymongo is too old or no server answers.
    """
    import pymongo
    from pymongo.errors import PyMongoError

    if tuple(pymongo.version_tuple[:2]) < MIN_PYMONGO:
        raise DocumentStoreError(
            f"[mongodb] uri needs pymongo >= {'.'.join(map(str, MIN_PYMONGO))} (AsyncMongoClient);"
            f" installed: {pymongo.version}"
        )
    client: AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
        appname="appusers",
        connect=False,
    )
    try:
        await client.admin.command("ping")
    except PyMongoError as exc:
        await client.close()
        # The topology description after "Timeout:" repeats the same in a page of text.
        reason = _scrub(str(exc), uri).split(", Timeout:")[0].split(", Topology Description")[0]
        raise DocumentStoreError(
            f"cannot reach MongoDB at {shown} within {timeout:g} s ({type(exc).__name__}: {reason})"
        ) from None
    return PyMongoDocumentStore(client)


@contextlib.contextmanager
def _translated() -> Any:
    """pymongo's errors become ``DocumentStoreError`` here, at the one border that knows them."""
    from pymongo.errors import PyMongoError

    try:
        yield
    except PyMongoError as exc:
        raise DocumentStoreError(str(exc)) from None


T = TypeVar("T")
Doc = dict[str, Any]


def _within(filter: Filter, ids: list[Any]) -> dict[str, Any]:
    """``filter`` narrowed to ``ids`` (kept whole, so a positional ``$`` still finds its array)."""
    return {"$and": [dict(filter), {"_id": {"$in": ids}}]}


def _is_replacement(update: Mapping[str, Any]) -> bool:
    return bool(update) and not any(str(k).startswith("$") for k in update)


def _sort(sort: Sort | None) -> list[tuple[str, int]] | None:
    if not sort:
        return None
    return list(sort.items()) if isinstance(sort, Mapping) else [(f, d) for f, d in sort]


class PyMongoDocumentStore:
    """A ``DocumentStore`` backed by MongoDB (untested against a live server; see the module docstring).

    >>> store = PyMongoDocumentStore(pymongo.AsyncMongoClient("mongodb://127.0.0.1:27017"))  # doctest: +SKIP

    Change streams need a replica set. ``aclose()`` closes the client.
    """

    def __init__(self, client: AsyncMongoClient[dict[str, Any]]) -> None:
        self._client = client

    def collection(self, database: str, name: str) -> PyMongoDocumentCollection:
        """The collection ``name`` in ``database``."""
        return PyMongoDocumentCollection(self._client[database][name])

    async def aclose(self) -> None:
        """Close the client."""
        await self._client.close()


class PyMongoDocumentCollection:
    """One MongoDB collection behind the ``DocumentCollection`` seam."""

    def __init__(self, coll: Any) -> None:
        self._coll = coll

    async def _transaction(self, body: Callable[[Any], Awaitable[T]]) -> T:
        """``body(session)`` in a transaction: committed if it returns, aborted if it raises."""
        with _translated():
            async with self._coll.database.client.start_session() as session:
                async with await session.start_transaction():
                    return await body(session)

    async def _images(self, session: Any, ids: list[Any]) -> dict[Any, Doc]:
        found = await self._coll.find({"_id": {"$in": ids}}, session=session).to_list(None)
        return {id_key(d["_id"]): d for d in found}

    async def _guarded_update(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        multi: bool,
        upsert: bool,
        array_filters: Sequence[Mapping[str, Any]] | None,
        guard: WriteGuard,
    ) -> UpdateResult:
        async def body(s: Any) -> UpdateResult:
            pres: list[Doc] = await self._coll.find(filter, session=s, limit=0 if multi else 1).to_list(None)
            ids = [d["_id"] for d in pres]
            target = _within(filter, ids) if pres else filter
            if not pres and not upsert:
                guard([])
                return UpdateResult(0, 0, None)
            if _is_replacement(update):
                r = await self._coll.replace_one(target, update, upsert=upsert, session=s)
            else:
                write = self._coll.update_many if multi else self._coll.update_one
                r = await write(target, update, upsert=upsert, array_filters=array_filters, session=s)
            new = ids + ([r.upserted_id] if r.upserted_id is not None else [])
            posts = await self._images(s, new)
            pairs: list[tuple[Doc | None, Doc | None]] = [(d, posts.get(id_key(d["_id"]))) for d in pres]
            if r.upserted_id is not None:
                pairs.append((None, posts.get(id_key(r.upserted_id))))
            guard(pairs)
            return UpdateResult(r.matched_count, r.modified_count, r.upserted_id)

        return await self._transaction(body)

    async def _guarded_delete(
        self, filter: Filter, *, multi: bool, sort: Sort | None, guard: WriteGuard
    ) -> tuple[int, Doc | None]:
        async def body(s: Any) -> tuple[int, Doc | None]:
            cursor = self._coll.find(filter, sort=_sort(sort), limit=0 if multi else 1, session=s)
            pres: list[Doc] = await cursor.to_list(None)
            guard([(d, None) for d in pres])
            if not pres:
                return 0, None
            r = await self._coll.delete_many({"_id": {"$in": [d["_id"] for d in pres]}}, session=s)
            return int(r.deleted_count), pres[0]

        return await self._transaction(body)

    async def _guarded_find_and_modify(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None,
        sort: Sort | None,
        upsert: bool,
        return_new: bool,
        replace: bool,
        guard: WriteGuard,
    ) -> Doc | None:
        from pymongo import ReturnDocument

        async def body(s: Any) -> Doc | None:
            pre: Doc | None = await self._coll.find_one(filter, sort=_sort(sort), session=s)
            if pre is None and not upsert:
                guard([])
                return None
            target = filter if pre is None else _within(filter, [pre["_id"]])
            write = self._coll.find_one_and_replace if replace else self._coll.find_one_and_update
            post: Doc | None = await write(
                target, update, upsert=upsert, return_document=ReturnDocument.AFTER, session=s
            )
            guard([(pre, post)])
            image = post if return_new else pre
            return None if image is None else Projection(projection).apply(image)

        return await self._transaction(body)

    async def find(
        self,
        filter: Filter | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """See ``DocumentCollection.find``."""
        with _translated():
            cursor = self._coll.find(filter or {}, projection, sort=_sort(sort), limit=limit or 0)
            return list(await cursor.to_list(None))

    async def find_one(
        self,
        filter: Filter | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
    ) -> dict[str, Any] | None:
        """See ``DocumentCollection.find_one``."""
        with _translated():
            doc: dict[str, Any] | None = await self._coll.find_one(filter or {}, projection, sort=_sort(sort))
            return doc

    async def insert_one(self, doc: Mapping[str, Any]) -> Any:
        """See ``DocumentCollection.insert_one``."""
        with _translated():
            return (await self._coll.insert_one(dict(doc))).inserted_id

    async def insert_many(self, docs: Sequence[Mapping[str, Any]]) -> list[Any]:
        """See ``DocumentCollection.insert_many`` (MongoDB inserts in order until the first error)."""
        with _translated():
            return list((await self._coll.insert_many([dict(d) for d in docs])).inserted_ids)

    async def update_one(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        guard: WriteGuard | None = None,
    ) -> UpdateResult:
        """See ``DocumentCollection.update_one``; a plain document is a replacement."""
        if guard is not None:
            return await self._guarded_update(
                filter, update, multi=False, upsert=upsert, array_filters=array_filters, guard=guard
            )
        with _translated():
            if update and not any(str(k).startswith("$") for k in update):
                r = await self._coll.replace_one(filter, update, upsert=upsert)
            else:
                r = await self._coll.update_one(filter, update, upsert=upsert, array_filters=array_filters)
            return UpdateResult(r.matched_count, r.modified_count, r.upserted_id)

    async def update_many(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        guard: WriteGuard | None = None,
    ) -> UpdateResult:
        """See ``DocumentCollection.update_many``."""
        if guard is not None:
            return await self._guarded_update(
                filter, update, multi=True, upsert=upsert, array_filters=array_filters, guard=guard
            )
        with _translated():
            r = await self._coll.update_many(filter, update, upsert=upsert, array_filters=array_filters)
            return UpdateResult(r.matched_count, r.modified_count, r.upserted_id)

    async def delete_one(self, filter: Filter, *, guard: WriteGuard | None = None) -> int:
        """See ``DocumentCollection.delete_one``."""
        if guard is not None:
            return (await self._guarded_delete(filter, multi=False, sort=None, guard=guard))[0]
        with _translated():
            return int((await self._coll.delete_one(filter)).deleted_count)

    async def delete_many(self, filter: Filter, *, guard: WriteGuard | None = None) -> int:
        """See ``DocumentCollection.delete_many``."""
        if guard is not None:
            return (await self._guarded_delete(filter, multi=True, sort=None, guard=guard))[0]
        with _translated():
            return int((await self._coll.delete_many(filter)).deleted_count)

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """See ``DocumentCollection.aggregate``."""
        with _translated():
            cursor = await self._coll.aggregate(list(pipeline))
            return list(await cursor.to_list(None))

    async def count(self, filter: Filter | None = None, *, limit: int | None = None) -> int:
        """See ``DocumentCollection.count``."""
        with _translated():
            kwargs = {"limit": limit} if limit and limit > 0 else {}
            return int(await self._coll.count_documents(filter or {}, **kwargs))

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
        """See ``DocumentCollection.find_one_and_update``."""
        from pymongo import ReturnDocument

        if guard is not None:
            return await self._guarded_find_and_modify(
                filter, update, projection=projection, sort=sort, upsert=upsert, return_new=return_new,
                replace=False, guard=guard,
            )  # fmt: skip
        with _translated():
            doc: dict[str, Any] | None = await self._coll.find_one_and_update(
                filter, update, projection=projection, sort=_sort(sort), upsert=upsert,
                return_document=ReturnDocument.AFTER if return_new else ReturnDocument.BEFORE,
            )  # fmt: skip
            return doc

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
        """See ``DocumentCollection.find_one_and_replace``."""
        from pymongo import ReturnDocument

        if guard is not None:
            return await self._guarded_find_and_modify(
                filter, replacement, projection=projection, sort=sort, upsert=upsert, return_new=return_new,
                replace=True, guard=guard,
            )  # fmt: skip
        with _translated():
            doc: dict[str, Any] | None = await self._coll.find_one_and_replace(
                filter, replacement, projection=projection, sort=_sort(sort), upsert=upsert,
                return_document=ReturnDocument.AFTER if return_new else ReturnDocument.BEFORE,
            )  # fmt: skip
            return doc

    async def find_one_and_delete(
        self,
        filter: Filter,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        guard: WriteGuard | None = None,
    ) -> dict[str, Any] | None:
        """See ``DocumentCollection.find_one_and_delete``."""
        if guard is not None:
            _count, pre = await self._guarded_delete(filter, multi=False, sort=sort, guard=guard)
            return None if pre is None else Projection(projection).apply(pre)
        with _translated():
            doc: dict[str, Any] | None = await self._coll.find_one_and_delete(
                filter, projection=projection, sort=_sort(sort)
            )
            return doc

    def watch(
        self, *, ids: Sequence[Any] | None = None, filter: Filter | None = None, pre_images: bool = False
    ) -> PyMongoChangeStream:
        """See ``DocumentCollection.watch``; uses a MongoDB change stream with ``updateLookup``."""
        pipeline: list[dict[str, Any]] = []
        if ids is not None:
            pipeline.append({"$match": {"documentKey._id": {"$in": list(ids)}}})
        if filter is not None:
            pipeline.append({"$match": dict(filter)})
        return PyMongoChangeStream(self._coll, pipeline, pre_images)


class PyMongoChangeStream:
    """Opens the driver's change stream on first ``__anext__``; ``aclose()`` closes it."""

    def __init__(self, coll: Any, pipeline: list[dict[str, Any]], pre_images: bool = False) -> None:
        self._coll = coll
        self._pre_images = pre_images
        self._pipeline = pipeline
        self._stream: Any = None
        self._closed = False

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._closed:
            raise StopAsyncIteration
        with _translated():
            if self._stream is None:
                extra = {"full_document_before_change": "whenAvailable"} if self._pre_images else {}
                self._stream = await self._coll.watch(self._pipeline, full_document="updateLookup", **extra)
            event: dict[str, Any] = await self._stream.next()
            return event

    async def aclose(self) -> None:
        """Close the driver's stream; idempotent."""
        self._closed = True
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.close()
