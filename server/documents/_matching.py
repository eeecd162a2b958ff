"""Query matching and BSON ordering, borrowed from mongomock at this one border.

mongomock's matcher (``mongomock.filtering``) covered every query operator we
test (see docs/server-documents.md for the measured comparison); its gaps in
ordering (it cannot order ``Decimal128``) are closed by matching on a *view* of
each document in which decimals are ``decimal.Decimal`` (``_codec.to_view``).
Only this module and ``_aggregate`` import mongomock, so replacing it means
rewriting two modules, not the store.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import mongomock
from mongomock import filtering as _filtering

from ._codec import to_view
from ._errors import DocumentStoreError
from ._regex import install as _install_re2
from ._regex import safe_patterns

_install_re2()

__all__ = [
    "FOREIGN_ERRORS",
    "compare",
    "document_matches",
    "matches",
    "prepare_filter",
    "sort_entries",
    "sort_spec",
]

T = TypeVar("T")

# mongomock's functions are untyped; one Any-typed alias keeps that at this border.
filtering: Any = _filtering

#: What mongomock raises for a query it rejects or does not implement.
FOREIGN_ERRORS: tuple[type[BaseException], ...] = (
    mongomock.OperationFailure,
    NotImplementedError,
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    IndexError,
    re.error,
    # $divide by zero, $pow overflowing, decimal traps: bad input, like MongoDB's own errors.
    ArithmeticError,
    # Nesting deeper than the stack allows (the request guard normally refuses it earlier).
    RecursionError,
)


def prepare_filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    """A query ready for :func:`matches`, every pattern on RE2; rejects non-documents and bad patterns."""
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise DocumentStoreError(f"a filter must be a document, not {type(filter).__name__}")
    view = safe_patterns(to_view(dict(filter)))
    assert isinstance(view, dict)
    return view


def matches(filter_view: Mapping[str, Any], doc_view: Mapping[str, Any]) -> bool:
    """Whether the document (a view) matches the prepared query."""
    if not filter_view:
        return True
    try:
        return bool(filtering.filter_applies(filter_view, doc_view))
    except FOREIGN_ERRORS as exc:
        raise DocumentStoreError(f"bad query: {exc}") from None


def document_matches(filter: Mapping[str, Any] | None, doc: Mapping[str, Any]) -> bool:
    """Whether a plain document matches a plain query (for one-off checks outside the engine)."""
    view = to_view(dict(doc))
    assert isinstance(view, dict)
    return matches(prepare_filter(filter), view)


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 in MongoDB's cross-type BSON order (numbers < strings < documents < arrays ...)."""
    a, b = to_view(a), to_view(b)
    try:
        if filtering.bson_compare(lambda x, y: x < y, a, b):
            return -1
        if filtering.bson_compare(lambda x, y: x > y, a, b):
            return 1
    except FOREIGN_ERRORS as exc:
        raise DocumentStoreError(f"cannot compare values: {exc}") from None
    return 0


def sort_spec(sort: Mapping[str, int] | Sequence[Any] | None) -> list[tuple[str, int]]:
    """Normalise ``{"a": 1, "b": -1}`` or ``[("a", 1), ...]`` to a checked list of pairs."""
    if not sort:
        return []
    pairs = list(sort.items()) if isinstance(sort, Mapping) else [tuple(p) for p in sort]
    out: list[tuple[str, int]] = []
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise DocumentStoreError(f"bad sort specification: {pair!r}")
        field, direction = pair
        if isinstance(direction, bool) or direction not in (1, -1):
            raise DocumentStoreError(f"sort direction for {field!r} must be 1 or -1")
        out.append((field, int(direction)))
    return out


def _sort_value(doc: Mapping[str, Any], path: str, direction: int) -> Any:
    """The value a document sorts by: arrays sort by their least (ascending) or greatest element."""
    candidates = [v for v in filtering.iter_key_candidates(path, doc) if v is not filtering.NOTHING]
    values: list[Any] = []
    for value in candidates:
        if isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
    if not values:
        # A missing field and an empty array both sort as null.
        return None
    pick = min if direction == 1 else max
    return pick(values, key=functools.cmp_to_key(compare))


def sort_entries(
    items: Iterable[T], spec: list[tuple[str, int]], view_of: Callable[[T], Mapping[str, Any]]
) -> list[T]:
    """``items`` stably sorted by ``spec``; ties keep their natural (insertion) order."""
    result = list(items)
    if not spec:
        return result
    # Resolve each sort value once, not once per comparison.
    decorated = [(item, [_sort_value(view_of(item), p, d) for p, d in spec]) for item in result]
    # Stable sorts from the last key to the first give the multi-key order. A key whose values
    # are all of one plain type sorts natively; mixed types need the (slow) BSON comparator.
    for index in range(len(spec) - 1, -1, -1):
        reverse = spec[index][1] == -1
        values = [entry[1][index] for entry in decorated]
        if _plain_kind(values):
            decorated.sort(key=lambda entry: entry[1][index], reverse=reverse)
        else:
            bson_key = functools.cmp_to_key(compare)
            decorated.sort(key=lambda entry: bson_key(entry[1][index]), reverse=reverse)
    return [item for item, _ in decorated]


def _plain_kind(values: list[Any]) -> bool:
    """Whether all values are numbers (not bool), or all strings, or all datetimes: natively comparable."""
    if not values:
        return True
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return not any(v != v for v in values)  # NaN has its own place in BSON order
    return all(isinstance(v, str) for v in values) or all(isinstance(v, datetime.datetime) for v in values)
