"""Hash indexes on top-level fields, so equality lookups (custom user data by user id) skip the scan.

An index is built the first time a query on a collection of some size has an
equality condition on a plain top-level field, and is maintained on every
committed write from then on. It only narrows the candidates: the full query
still runs on each, so an index can make a query faster but never different.
Array fields index each element, which is how ``{"tags": "blue"}`` matches an
array containing ``"blue"``.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Mapping
from typing import Any

from bson.decimal128 import Decimal128
from bson.objectid import ObjectId

from ._codec import id_key

__all__ = ["EqualityIndexes"]

#: Smaller collections are scanned: cheaper than keeping an index.
MIN_DOCUMENTS = 32
#: Indexes kept per collection; queries on further fields scan.
MAX_PER_COLLECTION = 16

_Index = dict[Any, set[Any]]


def _indexable(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isnan(value)
    if isinstance(value, Decimal128 | decimal.Decimal):
        d = value.to_decimal() if isinstance(value, Decimal128) else value
        return d.is_finite()
    return isinstance(value, str | int | ObjectId | datetime.datetime)


def _key(value: Any) -> Any:
    # The matcher (mongomock) treats true/false as equal to 1/0, unlike MongoDB. The index follows
    # the matcher so that a query answers the same whether or not an index exists.
    return id_key(int(value)) if isinstance(value, bool) else id_key(value)


def _equality_value(field: str, cond: Any) -> tuple[bool, Any]:
    if field.startswith("$") or "." in field or field == "_id":
        return False, None
    if isinstance(cond, Mapping):
        if set(cond) == {"$eq"}:
            cond = cond["$eq"]
        else:
            return False, None
    return _indexable(cond), cond


def _values(view: Mapping[str, Any], field: str) -> set[Any]:
    if field not in view:
        return set()
    value = view[field]
    items = value if isinstance(value, list) else [value]
    return {_key(v) for v in items if _indexable(v)}


class EqualityIndexes:
    """All indexes of one engine: namespace -> field -> value key -> document keys."""

    def __init__(self) -> None:
        self._by_ns: dict[Any, dict[str, _Index]] = {}

    def candidates(
        self, ns: Any, query: Mapping[str, Any], views: Mapping[Any, Mapping[str, Any]]
    ) -> set[Any] | None:
        """Keys of the documents that can match ``query``, or ``None`` when no index applies."""
        best: set[Any] | None = None
        for field, cond in query.items():
            usable, value = _equality_value(field, cond)
            if not usable:
                continue
            index = self._index(ns, field, views)
            if index is None:
                continue
            bucket = index.get(_key(value), set())
            if best is None or len(bucket) < len(best):
                best = bucket
        return None if best is None else set(best)

    def _index(self, ns: Any, field: str, views: Mapping[Any, Mapping[str, Any]]) -> _Index | None:
        indexes = self._by_ns.setdefault(ns, {})
        index = indexes.get(field)
        if index is None:
            if len(views) < MIN_DOCUMENTS or len(indexes) >= MAX_PER_COLLECTION:
                return None
            index = {}
            for key, view in views.items():
                for value in _values(view, field):
                    index.setdefault(value, set()).add(key)
            # Registered only once complete: a build cut short (the operation's time limit
            # interrupts it) must not leave a partial index that hides documents from later queries.
            indexes[field] = index
        return index

    def add(self, ns: Any, key: Any, view: Mapping[str, Any]) -> None:
        """Index a stored document."""
        for field, index in self._by_ns.get(ns, {}).items():
            for value in _values(view, field):
                index.setdefault(value, set()).add(key)

    def remove(self, ns: Any, key: Any, view: Mapping[str, Any]) -> None:
        """Forget a document as it was (``view`` is its old version)."""
        for field, index in self._by_ns.get(ns, {}).items():
            for value in _values(view, field):
                bucket = index.get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del index[value]
