"""The synchronous core: every collection in memory, every write persisted to SQLite first.

One ``Engine`` owns one directory. It is driven from a single thread (the
store's worker), so it needs no locks. A write is computed on copies, committed
to SQLite in one transaction, and only then applied to memory: if the commit
fails, memory still matches the disk.

Storage: ``<dir>/documents.sqlite3``, table ``documents(seq, db, coll, body)``,
``body`` the document's BSON bytes, ``seq`` its insertion order (MongoDB's
natural order, which survives a restart). WAL journal, ``synchronous=NORMAL``:
a crash of the process never loses a committed write nor leaves a torn one; a
power cut may lose the last few commits but never corrupts the file.
``<dir>/LOCK`` is held (``flock``) while open, so a second process cannot open
the same directory and silently diverge.

Shared mode (``shared=True``, the worker processes of one ``appusers serve --workers N``):
several engines in several processes hold the same directory, each with every document in
memory. Each committed write then also appends its images to the ``changes`` table in the
same transaction, and an engine catches up before every operation: ``PRAGMA data_version``
(a few microseconds) tells whether another connection committed since it last looked, and if
so it applies the change rows after the last one it saw, in commit order, to its memory and
hands them on as :class:`Change` objects (so change streams see writes made by any process).
A write takes SQLite's write lock (``BEGIN IMMEDIATE``) first and catches up under it, so it
is computed on the latest state and writes stay serialised across processes. The caller
(the supervisor) holds the directory lock for the whole group. Change rows are pruned behind
the newest :data:`CHANGES_KEPT`; an engine that fell further behind reloads everything and
reports the gap (its change streams end as fallen behind).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
from bson.objectid import ObjectId
from bson.regex import Regex

from .._sqlite_setup import set_up
from ._aggregate import run_pipeline
from ._codec import MAX_BSON_SIZE, decode, encode, id_key, to_view
from ._errors import DocumentStoreError
from ._index import EqualityIndexes
from ._matching import matches, prepare_filter, sort_entries, sort_spec
from ._projection import Projection
from ._protocol import UpdateResult, WriteGuard
from ._regex import SafePattern
from ._update import apply_update, is_replacement, seed_from_filter, validate_update

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, single-process use is on the caller
    fcntl = None  # type: ignore[assignment]

__all__ = ["Change", "Engine", "Namespace"]

Namespace = tuple[str, str]
_SCHEMA_VERSION = 1
#: Change rows kept for engines catching up (shared mode); older ones are pruned.
CHANGES_KEPT = 10_000
#: Own writes between two prunes of the change rows.
_PRUNE_EVERY = 1_000
#: Seconds a shared engine waits for another process's write lock before failing the operation.
_BUSY_TIMEOUT = 30.0


@attrs.define(slots=True)
class _Entry:
    seq: int
    raw: bytes
    view: dict[str, Any]


@attrs.frozen
class Change:
    """One committed write, for change streams: BSON of the images, never shared dicts."""

    operation: str  # insert | update | replace | delete
    ns: Namespace
    doc_id: Any
    pre: bytes | None
    post: bytes | None


class _Write:
    """The writes of one operation, staged until they are committed together."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.inserts: list[tuple[Any, bytes]] = []
        self.updates: list[tuple[Any, _Entry, bytes]] = []
        self.deletes: list[tuple[Any, _Entry]] = []
        self.changes: list[Change] = []


class Engine:
    """All collections of one store; see the module docstring for the storage rules."""

    def __init__(self, path: Path | None, *, shared: bool = False) -> None:
        if shared and path is None:
            raise ValueError("a shared engine needs a directory")
        self._shared = shared
        self._in_write = False
        #: Id of the last change row this engine has applied (shared mode).
        self._seen = 0
        self._data_version = -1
        self._since_prune = 0
        #: Changes other processes committed, caught up but not yet handed to change streams.
        self._caught_up: list[Change] = []
        self._lost = False
        self._last_logged = 0
        self._torn = False
        self._lock_file: IO[bytes] | None = None
        #: Called once a write is computed, right before it commits (the store ends its deadline there).
        self.before_commit: Callable[[], object] | None = None
        self._colls: dict[Namespace, dict[Any, _Entry]] = {}
        #: Commits per collection so far: readers on other threads compare it to trust a cached read.
        self.versions: dict[Namespace, int] = {}
        self._indexes = EqualityIndexes()
        if path is None:
            self._db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            path.mkdir(parents=True, exist_ok=True)
            if not shared:  # shared: the supervisor holds the lock for its workers
                self._lock_file = _lock(path / "LOCK")
            try:
                self._db = sqlite3.connect(
                    path / "documents.sqlite3", isolation_level=None, timeout=_BUSY_TIMEOUT
                )
                # Workers open a fresh data directory at the same moment (see _sqlite_setup).
                set_up(self._db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", timeout=_BUSY_TIMEOUT)
            except sqlite3.Error as exc:
                self._unlock()
                raise DocumentStoreError(f"cannot open the document store in {path}: {exc}") from None
        try:
            self._init_schema()
            self._load()
        except (sqlite3.Error, DocumentStoreError) as exc:
            self._db.close()
            self._unlock()
            raise DocumentStoreError(f"cannot load the document store: {exc}") from None

    # -- lifecycle -------------------------------------------------------------------------------

    def _init_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise DocumentStoreError(f"store schema {version} is newer than this code ({_SCHEMA_VERSION})")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS documents ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " db TEXT NOT NULL, coll TEXT NOT NULL, body BLOB NOT NULL)"
        )
        # Read only in shared mode; an older version of this code ignores the table.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS changes ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, db TEXT NOT NULL, coll TEXT NOT NULL,"
            " op TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL)"
        )
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _load(self) -> None:
        self._colls = {}
        self._indexes = EqualityIndexes()
        # One read transaction: the documents and the last change row are the same snapshot
        # (a reload under the write lock is already inside one).
        own = not self._db.in_transaction
        if own:
            self._db.execute("BEGIN")
        try:
            rows = self._db.execute("SELECT seq, db, coll, body FROM documents ORDER BY seq")
            for seq, db, coll, body in rows:
                doc = decode(body)
                self._colls.setdefault((db, coll), {})[id_key(doc.get("_id"))] = _Entry(
                    seq, body, to_view(doc)
                )
            self._seen = self._db.execute("SELECT coalesce(max(id), 0) FROM changes").fetchone()[0]
        finally:
            if own:
                self._db.execute("COMMIT")
        self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]

    # -- other processes' writes (shared mode) ---------------------------------------------------

    def catch_up(self) -> None:
        """Apply what other processes committed since this engine last looked (shared mode only)."""
        if not self._shared:
            return
        if self._torn:
            # An earlier catch-up was interrupted between applying a row and recording it.
            self._torn = False
            self._caught_up.clear()
            self._lost = True
            self._load()
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version and not self._in_write:
            return
        self._data_version = version
        rows = self._db.execute(
            "SELECT id, db, coll, op, seq, body FROM changes WHERE id > ? ORDER BY id", (self._seen,)
        ).fetchall()
        if rows and rows[0][0] != self._seen + 1:
            # Pruned past what this engine saw: start over from the documents themselves.
            self._caught_up.clear()
            self._lost = True
            self._load()
            return
        self._torn = True
        for change_id, db, coll, op, seq, body in rows:
            self._apply_row((db, coll), op, seq, body)
            self._seen = change_id
        self._torn = False

    def _apply_row(self, ns: Namespace, op: str, seq: int, body: bytes) -> None:
        doc = decode(body)
        key = id_key(doc.get("_id"))
        entries = self._colls.setdefault(ns, {})
        old = entries.get(key)
        if op == "delete":
            if old is not None:
                self._indexes.remove(ns, key, old.view)
                del entries[key]
            self._caught_up.append(Change("delete", ns, doc["_id"], body, None))
            return
        if old is not None:
            self._indexes.remove(ns, key, old.view)
        entry = entries[key] = _Entry(seq, body, to_view(doc))
        self._indexes.add(ns, key, entry.view)
        if op == "insert" or old is None:
            self._caught_up.append(Change("insert", ns, doc["_id"], None, body))
        else:
            self._caught_up.append(Change(op, ns, doc["_id"], old.raw, body))

    def take_caught_up(self) -> tuple[list[Change], bool]:
        """The changes of other processes applied since the last call, and whether some were lost."""
        changes, self._caught_up = self._caught_up, []
        lost, self._lost = self._lost, False
        return changes, lost

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Shared mode: hold the write lock from before the write is computed until it commits."""
        if not self._shared:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._in_write = True
        try:
            self.catch_up()
            yield
        finally:
            if self._in_write:  # nothing to commit, or the write failed
                self._in_write = False
                self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close SQLite and release the directory lock; idempotent."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    # -- reads -----------------------------------------------------------------------------------

    def _select(
        self, ns: Namespace, filter: Mapping[str, Any] | None, sort: Any = None, limit: int | None = None
    ) -> list[_Entry]:
        entries = self._colls.get(ns, {})
        query = prepare_filter(filter)
        candidates: Any = entries.values()
        id_cond = query.get("_id", _NO_ID)
        if id_cond is not _NO_ID:
            if isinstance(id_cond, Mapping) and set(id_cond) == {"$eq"}:
                id_cond = id_cond["$eq"]
            operator = isinstance(id_cond, Mapping) and any(str(k).startswith("$") for k in id_cond)
            # A regex is a pattern match and a list an array comparison: neither is a key lookup.
            if not operator and not isinstance(id_cond, list | re.Pattern | Regex | SafePattern):
                # Equality on _id: one hash lookup instead of a scan.
                hit = entries.get(id_key(id_cond))
                candidates = [hit] if hit is not None else []
        if not isinstance(candidates, list):  # no _id lookup: maybe an index on another field
            keys = self._indexes.candidates(ns, query, _Views(entries))
            if keys is not None:
                candidates = sorted((entries[k] for k in keys), key=lambda e: e.seq)
        spec = sort_spec(sort)
        n = abs(limit) if limit else None
        if not spec and n is not None:
            out: list[_Entry] = []
            for entry in candidates:
                if matches(query, entry.view):
                    out.append(entry)
                    if len(out) >= n:
                        break
            return out
        selected = [e for e in candidates if matches(query, e.view)]
        selected = sort_entries(selected, spec, lambda e: e.view)
        return selected[:n] if n is not None else selected

    def find(
        self,
        ns: Namespace,
        filter: Mapping[str, Any] | None,
        projection: Mapping[str, Any] | None,
        sort: Any,
        limit: int | None,
    ) -> list[dict[str, Any]]:
        """Matching documents, projected; each a fresh copy."""
        proj = Projection(projection)
        return [proj.apply(decode(e.raw)) for e in self._select(ns, filter, sort, limit)]

    def count(self, ns: Namespace, filter: Mapping[str, Any] | None, limit: int | None) -> int:
        """How many match, capped by a positive ``limit``."""
        return len(self._select(ns, filter, None, limit if limit and limit > 0 else None))

    def aggregate(self, ns: Namespace, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Run a pipeline; ``$lookup`` reads other collections of the same database."""
        docs = [decode(e.raw) for e in self._colls.get(ns, {}).values()]

        def finder(name: str, filter: Mapping[str, Any]) -> list[dict[str, Any]]:
            return [decode(e.raw) for e in self._select((ns[0], name), filter)]

        return run_pipeline(docs, pipeline, finder)

    # -- writes ----------------------------------------------------------------------------------

    def insert(self, ns: Namespace, docs: Sequence[Mapping[str, Any]]) -> tuple[list[Any], list[Change]]:
        """Insert all documents or none; returns their ``_id`` values in input order."""
        with self._writing():
            return self._insert(ns, docs)

    def _insert(self, ns: Namespace, docs: Sequence[Mapping[str, Any]]) -> tuple[list[Any], list[Change]]:
        write = _Write(ns)
        entries = self._colls.get(ns, {})
        batch: set[Any] = set()
        ids: list[Any] = []
        for doc in docs:
            if not isinstance(doc, Mapping):
                raise DocumentStoreError(f"a document must be a mapping, not {type(doc).__name__}")
            prepared = _with_id(doc)
            raw = encode(prepared)
            if len(raw) > MAX_BSON_SIZE:
                raise DocumentStoreError(
                    f"object to insert too large. size in bytes: {len(raw)}, max size: {MAX_BSON_SIZE}"
                )
            key = id_key(prepared["_id"])
            if key in entries or key in batch:
                raise _duplicate(ns, prepared["_id"])
            batch.add(key)
            ids.append(decode(raw)["_id"])
            write.inserts.append((key, raw))
            write.changes.append(Change("insert", ns, ids[-1], None, raw))
        self._commit(write)
        return ids, write.changes

    def update(
        self,
        ns: Namespace,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        multi: bool,
        upsert: bool,
        array_filters: Sequence[Mapping[str, Any]] | None,
        sort: Any = None,
        replace_only: bool = False,
        guard: WriteGuard | None = None,
    ) -> tuple[UpdateResult, bytes | None, bytes | None, list[Change]]:
        """Update (or replace) the first or every match; returns the result and the first pre/post images."""
        with self._writing():
            return self._update(
                ns, filter, update, multi=multi, upsert=upsert, array_filters=array_filters, sort=sort,
                replace_only=replace_only, guard=guard,
            )  # fmt: skip

    def _update(
        self,
        ns: Namespace,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        multi: bool,
        upsert: bool,
        array_filters: Sequence[Mapping[str, Any]] | None,
        sort: Any,
        replace_only: bool,
        guard: WriteGuard | None,
    ) -> tuple[UpdateResult, bytes | None, bytes | None, list[Change]]:
        if not isinstance(filter, Mapping):
            raise DocumentStoreError("a filter must be a document")
        if isinstance(update, Mapping) and not update and not replace_only:
            raise DocumentStoreError("an update document must contain update operators")
        replacement = is_replacement(update)
        if replace_only and not replacement:
            raise DocumentStoreError("a replacement document cannot contain update operators")
        if replacement and multi:
            raise DocumentStoreError("update_many requires update operators, not a replacement document")
        if not replacement:
            if not update:
                raise DocumentStoreError("an update document must contain update operators")
            validate_update(update)
        if array_filters is not None and not isinstance(array_filters, list | tuple):
            raise DocumentStoreError("array_filters must be an array of documents")
        write = _Write(ns)
        selected = self._select(ns, filter, sort, None if multi else 1)
        first_pre: bytes | None = None
        first_post: bytes | None = None
        modified = 0
        images: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
        for entry in selected:
            old = decode(entry.raw)
            if replacement:
                new = _replace(old, update)
            else:
                new = apply_update(old, update, filter=filter, array_filters=array_filters)
            raw = _too_large_check(encode(new))
            if guard is not None:
                images.append((decode(entry.raw), decode(raw)))
            if first_pre is None:
                first_pre, first_post = entry.raw, raw
            if raw != entry.raw:
                modified += 1
                key = id_key(new["_id"])
                write.updates.append((key, entry, raw))
                write.changes.append(
                    Change("replace" if replacement else "update", ns, new["_id"], entry.raw, raw)
                )
        upserted_id: Any = None
        if not selected and upsert:
            seed = seed_from_filter(filter)
            if replacement:
                new = _replace(seed, update) if "_id" in seed else dict(update)
            else:
                new = apply_update(seed, update, filter=filter, array_filters=array_filters, inserting=True)
            prepared = _with_id(new)
            raw = _too_large_check(encode(prepared))
            key = id_key(prepared["_id"])
            if key in self._colls.get(ns, {}):
                raise _duplicate(ns, prepared["_id"])
            upserted_id = decode(raw)["_id"]
            write.inserts.append((key, raw))
            write.changes.append(Change("insert", ns, upserted_id, None, raw))
            first_post = raw
            if guard is not None:
                images.append((None, decode(raw)))
        if guard is not None:
            guard(images)
        self._commit(write)
        return UpdateResult(len(selected), modified, upserted_id), first_pre, first_post, write.changes

    def delete(
        self,
        ns: Namespace,
        filter: Mapping[str, Any],
        *,
        multi: bool,
        sort: Any = None,
        guard: WriteGuard | None = None,
    ) -> tuple[int, bytes | None, list[Change]]:
        """Delete the first or every match; returns the count and the first deleted document's BSON."""
        with self._writing():
            return self._delete(ns, filter, multi=multi, sort=sort, guard=guard)

    def _delete(
        self, ns: Namespace, filter: Mapping[str, Any], *, multi: bool, sort: Any, guard: WriteGuard | None
    ) -> tuple[int, bytes | None, list[Change]]:
        if not isinstance(filter, Mapping):
            raise DocumentStoreError("a filter must be a document")
        write = _Write(ns)
        selected = self._select(ns, filter, sort, None if multi else 1)
        for entry in selected:
            doc_id = decode(entry.raw)["_id"]
            write.deletes.append((id_key(doc_id), entry))
            write.changes.append(Change("delete", ns, doc_id, entry.raw, None))
        if guard is not None:
            guard([(decode(entry.raw), None) for entry in selected])
        self._commit(write)
        return len(selected), (selected[0].raw if selected else None), write.changes

    def _commit(self, write: _Write) -> None:
        if not (write.inserts or write.updates or write.deletes):
            return
        if self.before_commit is not None:
            self.before_commit()
        db, coll = write.ns
        seqs: list[int] = []
        try:
            if not self._in_write:
                self._db.execute("BEGIN IMMEDIATE")
            self._in_write = False  # from here this block commits or rolls back
            try:
                for _, raw in write.inserts:
                    cur = self._db.execute(
                        "INSERT INTO documents (db, coll, body) VALUES (?, ?, ?)", (db, coll, raw)
                    )
                    assert cur.lastrowid is not None
                    seqs.append(cur.lastrowid)
                self._db.executemany(
                    "UPDATE documents SET body = ? WHERE seq = ?",
                    [(raw, e.seq) for _, e, raw in write.updates],
                )
                self._db.executemany(
                    "DELETE FROM documents WHERE seq = ?", [(e.seq,) for _, e in write.deletes]
                )
                if self._shared:
                    self._log_changes(write, seqs)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DocumentStoreError(f"the document store could not save the change: {exc}") from None
        # Committed: now memory follows.
        if self._shared:
            self._seen = self._last_logged
        entries = self._colls.setdefault(write.ns, {})
        for (key, raw), seq in zip(write.inserts, seqs, strict=True):
            entry = entries[key] = _Entry(seq, raw, to_view(decode(raw)))
            self._indexes.add(write.ns, key, entry.view)
        for key, entry, raw in write.updates:
            self._indexes.remove(write.ns, key, entry.view)
            entry.raw = raw
            entry.view = to_view(decode(raw))
            self._indexes.add(write.ns, key, entry.view)
        for key, entry in write.deletes:
            self._indexes.remove(write.ns, key, entry.view)
            entries.pop(key, None)
        self.versions[write.ns] = self.versions.get(write.ns, 0) + 1


    def _log_changes(self, write: _Write, seqs: list[int]) -> None:
        """Append the write's images to ``changes`` (inside its transaction), in event order."""
        db, coll = write.ns
        updates = iter(write.updates)
        inserts = iter(zip(write.inserts, seqs, strict=True))
        deletes = iter(write.deletes)
        rows: list[tuple[str, str, str, int, bytes]] = []
        for change in write.changes:
            if change.operation == "insert":
                (_, raw), seq = next(inserts)
                rows.append((db, coll, "insert", seq, raw))
            elif change.operation == "delete":
                _, entry = next(deletes)
                rows.append((db, coll, "delete", entry.seq, entry.raw))
            else:
                _, entry, raw = next(updates)
                rows.append((db, coll, change.operation, entry.seq, raw))
        last = 0
        for row in rows:
            cur = self._db.execute(
                "INSERT INTO changes (db, coll, op, seq, body) VALUES (?, ?, ?, ?, ?)", row
            )
            last = cur.lastrowid or last
        self._last_logged = last
        self._since_prune += len(rows)
        if self._since_prune >= _PRUNE_EVERY:
            self._since_prune = 0
            self._db.execute("DELETE FROM changes WHERE id <= ?", (last - CHANGES_KEPT,))


_NO_ID = object()


class _Views(Mapping[Any, Mapping[str, Any]]):
    """Document key -> matching view, without copying the collection."""

    def __init__(self, entries: dict[Any, _Entry]) -> None:
        self._entries = entries

    def __getitem__(self, key: Any) -> Mapping[str, Any]:
        return self._entries[key].view

    def __iter__(self) -> Iterator[Any]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _lock(path: Path) -> IO[bytes]:
    handle = open(path, "a+b")
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DocumentStoreError(
                f"the document store in {path.parent} is already open (in this or another process)"
            ) from None
    os.set_inheritable(handle.fileno(), False)
    return handle


def _with_id(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with ``_id`` first, generated as an ``ObjectId`` when absent (as mongod does)."""
    doc_id = doc["_id"] if "_id" in doc else ObjectId()
    if isinstance(doc_id, list | tuple):
        raise DocumentStoreError("the '_id' value cannot be of type array")
    return {"_id": doc_id, **{k: v for k, v in doc.items() if k != "_id"}}


def _replace(old: Mapping[str, Any], replacement: Mapping[str, Any]) -> dict[str, Any]:
    if "_id" in replacement and "_id" in old and id_key(replacement["_id"]) != id_key(old["_id"]):
        raise DocumentStoreError("the _id field cannot be changed by a replacement")
    base = {"_id": old["_id"]} if "_id" in old else {}
    return {**base, **{k: v for k, v in replacement.items() if k != "_id"}}


def _too_large_check(raw: bytes) -> bytes:
    """``raw`` if within MongoDB's document limit; its error (code 17419) otherwise."""
    if len(raw) > MAX_BSON_SIZE:
        raise DocumentStoreError(f"Resulting document after update is larger than {MAX_BSON_SIZE}")
    return raw


def _duplicate(ns: Namespace, doc_id: Any) -> DocumentStoreError:
    return DocumentStoreError(
        f"E11000 duplicate key error collection: {ns[0]}.{ns[1]} index: _id_ dup key: {{ _id: {doc_id!r} }}"
    )
