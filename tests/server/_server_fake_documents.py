"""A throwaway stand-in for ``appusers.server.documents`` used only while the real store is absent.

Built on mongomock (sync) with the async API the server codes against, a JSON
dump for restart tests, and change events for inserts, updates and deletes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import attrs
import mongomock
from bson import ObjectId, json_util
from mongomock.filtering import filter_applies
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError


class DocumentStoreError(Exception):
    pass


@attrs.frozen
class UpdateResult:
    matched_count: int
    modified_count: int
    upserted_id: Any


def _sort(sort: Any) -> Any:
    return list(sort.items()) if isinstance(sort, dict) else sort


class EmbeddedDocumentStore:
    def __init__(self, path: Path | None):
        self._path = path
        self._client = mongomock.MongoClient(tz_aware=True)
        self._watchers: list[tuple[str, str, asyncio.Queue[Any], Any]] = []
        if path is not None and (path / "fake.json").exists():
            data = json_util.loads((path / "fake.json").read_text())
            for key, docs in data.items():
                db, coll = key.split("\x00")
                if docs:
                    self._client[db][coll].insert_many(docs)

    def collection(self, database: str, name: str) -> DocumentCollection:
        return DocumentCollection(self, database, name)

    def _emit(self, db: str, coll: str, op: str, _id: Any, full: Any, before: Any = None) -> None:
        event = {
            "_id": {"_data": str(ObjectId())},
            "operationType": op,
            "ns": {"db": db, "coll": coll},
            "documentKey": {"_id": _id},
        }
        if full is not None:
            event["fullDocument"] = full
        if op == "update":
            event["updateDescription"] = {
                "updatedFields": {k: v for k, v in (full or {}).items() if (before or {}).get(k) != v},
                "removedFields": [k for k in (before or {}) if k not in (full or {})],
            }
        for wdb, wcoll, queue, ids, flt in self._watchers:
            if flt and not filter_applies(flt, event):
                continue
            if (wdb, wcoll) == (db, coll) and (ids is None or _id in ids):
                queue.put_nowait(event)

    async def aclose(self) -> None:
        if self._path is None:
            return
        self._path.mkdir(parents=True, exist_ok=True)
        data = {}
        for dbname in self._client.list_database_names():
            for cname in self._client[dbname].list_collection_names():
                data[f"{dbname}\x00{cname}"] = list(self._client[dbname][cname].find())
        (self._path / "fake.json").write_text(json_util.dumps(data))


class _Watch:
    def __init__(self, store: EmbeddedDocumentStore, entry: Any):
        self._store, self._entry = store, entry

    def __aiter__(self) -> _Watch:
        return self

    async def __anext__(self) -> Any:
        return await self._entry[2].get()  # type: ignore[index]

    async def aclose(self) -> None:
        if self._entry in self._store._watchers:
            self._store._watchers.remove(self._entry)


class DocumentCollection:
    def __init__(self, store: EmbeddedDocumentStore, db: str, name: str):
        self._store, self._db, self._name = store, db, name
        self._c = store._client[db][name]

    def _wrap(self, fn: Any, *a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except (PyMongoError, NotImplementedError, mongomock.OperationFailure) as exc:
            raise DocumentStoreError(str(exc)) from None

    async def find(self, filter=None, *, projection=None, sort=None, limit=None):
        cur = self._wrap(self._c.find, filter or {}, projection)
        if sort:
            cur = cur.sort(_sort(sort))
        if limit:
            cur = cur.limit(limit)
        return self._wrap(list, cur)

    async def find_one(self, filter=None, *, projection=None, sort=None):
        docs = await self.find(filter, projection=projection, sort=sort, limit=1)
        return docs[0] if docs else None

    async def insert_one(self, doc):
        doc = dict(doc)
        result = self._wrap(self._c.insert_one, doc)
        self._store._emit(self._db, self._name, "insert", result.inserted_id, doc)
        return result.inserted_id

    async def insert_many(self, docs):
        return [await self.insert_one(d) for d in docs]

    async def _update(self, many, filter, update, upsert, array_filters):
        befores = {d["_id"]: d for d in self._c.find(filter)}
        ids = list(befores)
        fn = self._c.update_many if many else self._c.update_one
        kwargs = {"upsert": upsert}
        if array_filters:
            kwargs["array_filters"] = array_filters
        r = self._wrap(fn, filter, update, **kwargs)
        for _id in ids if many else ids[:1]:
            self._store._emit(
                self._db, self._name, "update", _id, self._c.find_one({"_id": _id}), befores[_id]
            )
        return UpdateResult(r.matched_count, r.modified_count, r.upserted_id)

    async def update_one(self, filter, update, *, upsert=False, array_filters=None):
        return await self._update(False, filter, update, upsert, array_filters)

    async def update_many(self, filter, update, *, upsert=False, array_filters=None):
        return await self._update(True, filter, update, upsert, array_filters)

    async def delete_one(self, filter):
        doc = self._c.find_one(filter or {})
        if doc is None:
            return 0
        self._c.delete_one({"_id": doc["_id"]})
        self._store._emit(self._db, self._name, "delete", doc["_id"], None)
        return 1

    async def delete_many(self, filter):
        n = 0
        while await self.delete_one(filter):
            n += 1
        return n

    async def aggregate(self, pipeline):
        return self._wrap(lambda: list(self._c.aggregate(pipeline)))

    async def count(self, filter=None, *, limit=None):
        kw = {"limit": limit} if limit else {}
        return self._wrap(self._c.count_documents, filter or {}, **kw)

    async def find_one_and_update(
        self, filter, update, *, projection=None, sort=None, upsert=False, return_new=False
    ):
        return self._wrap(
            self._c.find_one_and_update,
            filter,
            update,
            projection=projection,
            sort=_sort(sort),
            upsert=upsert,
            return_document=ReturnDocument.AFTER if return_new else ReturnDocument.BEFORE,
        )

    async def find_one_and_replace(
        self, filter, replacement, *, projection=None, sort=None, upsert=False, return_new=False
    ):
        return self._wrap(
            self._c.find_one_and_replace,
            filter,
            replacement,
            projection=projection,
            sort=_sort(sort),
            upsert=upsert,
            return_document=ReturnDocument.AFTER if return_new else ReturnDocument.BEFORE,
        )

    async def find_one_and_delete(self, filter, *, projection=None, sort=None):
        return self._wrap(self._c.find_one_and_delete, filter, projection=projection, sort=_sort(sort))

    def watch(self, *, ids=None, filter=None):
        entry = (self._db, self._name, asyncio.Queue(), ids, filter)
        self._store._watchers.append(entry)
        return _Watch(self._store, entry)
