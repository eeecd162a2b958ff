"""MongoDB's structural limits, checked before an operation touches the engine.

* Nesting: MongoDB stores no document nested deeper than 100 levels and parses
  no command much deeper. The matcher, the pipeline engine and the update code
  recurse once (or more) per level, so an input 900 levels deep would end in a
  ``RecursionError`` deep inside them. Every input is walked here first, without
  recursion; in queries, updates, projections, sorts and pipelines each
  segment of a dotted path (``"a.b.c"``) counts as a level too, as it does once
  MongoDB applies the path.
* Names: MongoDB's rules for database and collection names (no NUL, no ``$``,
  no ``system.`` collections, bounded length).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import DocumentStoreError

__all__ = ["MAX_DEPTH", "MAX_NAMESPACE_BYTES", "check_depth", "check_namespace"]

#: MongoDB: "no more than 100 levels of nesting for BSON documents".
MAX_DEPTH = 100
#: MongoDB's limit on ``<database>.<collection>`` in bytes.
MAX_NAMESPACE_BYTES = 255
#: MongoDB's limit on a database name in bytes.
MAX_DATABASE_BYTES = 63
_DATABASE_FORBIDDEN = frozenset('/\\. "$*<>:|?\x00')


def check_depth(value: Any, *, paths: bool, what: str = "input") -> None:
    """Refuse ``value`` nested deeper than :data:`MAX_DEPTH` (with ``paths``, dotted segments count)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DocumentStoreError(f"{what} exceeds the maximum nesting depth of {MAX_DEPTH}")
        if isinstance(item, Mapping):
            for key, child in item.items():
                extra = key.count(".") if paths and isinstance(key, str) else 0
                if isinstance(child, Mapping | list | tuple) or extra:
                    stack.append((child, depth + 1 + extra))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item if isinstance(child, Mapping | list | tuple))
        elif paths and isinstance(item, str) and item.count(".") >= MAX_DEPTH:
            # A path given as a value ($rename targets, "$a.b..." expressions, sort specs).
            raise DocumentStoreError(f"{what} has a field path deeper than {MAX_DEPTH} levels")


def check_namespace(database: Any, collection: Any) -> None:
    """Refuse a database or collection name MongoDB would refuse (as a :class:`DocumentStoreError`)."""
    if not isinstance(database, str) or not database:
        raise DocumentStoreError("database name must be a non-empty string")
    if not isinstance(collection, str) or not collection:
        raise DocumentStoreError("collection name must be a non-empty string")
    if any(c in _DATABASE_FORBIDDEN for c in database):
        raise DocumentStoreError(
            f'Invalid database name: {_shown(database)!r} (it cannot contain /\\. "$*<>:|? or NUL)'
        )
    if _utf8_len(database) > MAX_DATABASE_BYTES:
        raise DocumentStoreError(f"Invalid database name: longer than {MAX_DATABASE_BYTES} bytes")
    if "\x00" in collection or "$" in collection:
        raise DocumentStoreError(
            f"Invalid collection name: {_shown(collection)!r} (it cannot contain $ or NUL)"
        )
    if collection.startswith("system."):
        raise DocumentStoreError(
            f"Invalid collection name: {_shown(collection)!r} (system collections are reserved)"
        )
    if collection.startswith("."):
        raise DocumentStoreError("Invalid collection name: it cannot start with '.'")
    if _utf8_len(database) + 1 + _utf8_len(collection) > MAX_NAMESPACE_BYTES:
        raise DocumentStoreError(f"Fully qualified namespace is longer than {MAX_NAMESPACE_BYTES} bytes")


def _utf8_len(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise DocumentStoreError("database and collection names must be valid UTF-8") from None


def _shown(name: str) -> str:
    return name if len(name) <= 64 else name[:61] + "..."
