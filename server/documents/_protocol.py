"""The seam: what the server needs from a document store, as ``typing.Protocol`` classes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "ChangeStream",
    "DocumentCollection",
    "DocumentStore",
    "Filter",
    "Sort",
    "UpdateResult",
    "WriteGuard",
]

#: A MongoDB query document.
Filter = Mapping[str, Any]
#: ``{"field": 1 | -1, ...}`` (the order of the keys is the order of the sort) or ``[(field, 1 | -1), ...]``.
Sort = Mapping[str, int] | Sequence[tuple[str, int]]
#: Called with every ``(pre_image, post_image)`` of a write (``None`` for an insert's pre-image
#: or a delete's post-image) after the write is computed and before anything is committed; an
#: exception it raises cancels the whole write and reaches the caller. The access rules check
#: writes through it (``appusers.server.rules``).
WriteGuard = Callable[[list[tuple[dict[str, Any] | None, dict[str, Any] | None]]], None]


@attrs.frozen
class UpdateResult:
    """What ``update_one``/``update_many`` did; ``upserted_id`` is set only when an upsert inserted."""

    matched_count: int
    modified_count: int
    upserted_id: Any = None


@runtime_checkable
class ChangeStream(Protocol):
    """An async iterator of MongoDB change events; ``aclose()`` ends it and frees its buffer."""

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def __anext__(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class DocumentCollection(Protocol):
    """One collection. Every document returned is the caller's own copy."""

    async def find(
        self,
        filter: Filter | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Matching documents, sorted then limited (``limit`` of ``None`` or 0 means all)."""
        ...

    async def find_one(
        self,
        filter: Filter | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
    ) -> dict[str, Any] | None:
        """The first matching document, or ``None``."""
        ...

    async def insert_one(self, doc: Mapping[str, Any]) -> Any:
        """Insert one document; returns its ``_id`` (an ``ObjectId`` is generated when absent)."""
        ...

    async def insert_many(self, docs: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Insert all or none; returns the ``_id`` values in input order."""
        ...

    async def update_one(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        guard: WriteGuard | None = None,
    ) -> UpdateResult:
        """Update the first match (operators, or a replacement document)."""
        ...

    async def update_many(
        self,
        filter: Filter,
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        array_filters: Sequence[Mapping[str, Any]] | None = None,
        guard: WriteGuard | None = None,
    ) -> UpdateResult:
        """Update every match (operators only)."""
        ...

    async def delete_one(self, filter: Filter, *, guard: WriteGuard | None = None) -> int:
        """Delete the first match; returns 0 or 1."""
        ...

    async def delete_many(self, filter: Filter, *, guard: WriteGuard | None = None) -> int:
        """Delete every match; returns how many."""
        ...

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Run an aggregation pipeline over the collection."""
        ...

    async def count(self, filter: Filter | None = None, *, limit: int | None = None) -> int:
        """How many documents match, at most ``limit`` when it is positive."""
        ...

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
        """Update the first match (by ``sort``); the pre-image, or the post-image with ``return_new``."""
        ...

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
        """Replace the first match (by ``sort``); the pre-image, or the post-image with ``return_new``."""
        ...

    async def find_one_and_delete(
        self,
        filter: Filter,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sort | None = None,
        guard: WriteGuard | None = None,
    ) -> dict[str, Any] | None:
        """Delete the first match (by ``sort``) and return it."""
        ...

    def watch(
        self, *, ids: Sequence[Any] | None = None, filter: Filter | None = None, pre_images: bool = False
    ) -> ChangeStream:
        """Change events from now on: all, those with ``documentKey._id`` in ``ids``, or matching ``filter``.

        With ``pre_images`` update, replace and delete events also carry
        ``fullDocumentBeforeChange`` (the access rules decide on it who may see a delete).

        The stream is registered when ``watch`` returns, so a change made after
        this call is always delivered.
        """
        ...


@runtime_checkable
class DocumentStore(Protocol):
    """Databases of collections; ``aclose()`` ends every change stream and releases the storage."""

    def collection(self, database: str, name: str) -> DocumentCollection:
        """The collection ``name`` of ``database`` (created on first write)."""
        ...

    async def aclose(self) -> None:
        """Release the store; idempotent."""
        ...
