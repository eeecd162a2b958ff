"""Embedded document store behind the MongoDB service seam.

::

    DocumentStore, DocumentCollection, ChangeStream   the seam (typing.Protocol)
    EmbeddedDocumentStore                             default: a directory (or memory), one process
    PyMongoDocumentStore                              real MongoDB, pymongo.AsyncMongoClient (untested live)
    UpdateResult                                      matched_count, modified_count, upserted_id
    DocumentStoreError                                bad query/update/document, duplicate _id, closed store

Why this design (measured; full figures in docs/server-documents.md): none of
the maintained embedded options covers the required semantics on its own.
montydb 2.5.6 has no ``aggregate`` at all and took 1.6 s for 1,000 inserts on
its SQLite engine (10,000 did not finish in 5 minutes); mongita 1.2.0 (last
release 2023) rejects integer ``_id`` values, lacks ``$elemMatch``, ``$regex``,
``$exists``, ``$addToSet``, ``$unset`` and ``aggregate``, and needed 56 s for
10,000 inserts; tinydb has no MongoDB query language. mongomock 4.3.0 passed
50 of our 58 semantic cases, fast, but is memory-only, cannot order
``Decimal128``, and lacks ``$mul``, ``$[]``, array filters, Int64 arithmetic and
upsert seeding from ``$and``.

So the store is a hybrid: documents persisted by us as BSON in SQLite (stdlib
``sqlite3``, WAL, one transaction per operation; types round-trip exactly),
served from memory; query matching and aggregation borrowed from mongomock at a
single border (``_matching``, ``_aggregate``), with its two missing pipeline
pieces rewritten away; the update engine, projection and sorting written here.
The hybrid passes 56 of the same 58 cases (misses: ``$mod``; pymongo's own
exception class for duplicate keys).
For several server processes, use :class:`PyMongoDocumentStore` against one
MongoDB replica set: the embedded store locks its directory to one process.
"""

from ._aggregate import run_pipeline
from ._embedded import EmbeddedDocumentCollection, EmbeddedDocumentStore
from ._errors import DocumentStoreError
from ._matching import document_matches
from ._projection import Projection
from ._protocol import ChangeStream, DocumentCollection, DocumentStore, UpdateResult, WriteGuard
from ._pymongo import PyMongoDocumentStore

__all__ = [
    "ChangeStream",
    "DocumentCollection",
    "DocumentStore",
    "DocumentStoreError",
    "EmbeddedDocumentCollection",
    "EmbeddedDocumentStore",
    "Projection",
    "PyMongoDocumentStore",
    "UpdateResult",
    "WriteGuard",
    "document_matches",
    "run_pipeline",
]
