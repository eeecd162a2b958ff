"""Aggregation pipelines, run by mongomock's pipeline engine over copies of our documents.

mongomock implements the stages and accumulators the server needs; the two it
lacks are rewritten into equivalents it has before the pipeline runs:
the ``$unset`` stage becomes an exclusion ``$project``, and the ``$count``
accumulator becomes ``{$sum: 1}``. ``$lookup`` reads the other collection
through :class:`LookupSource`, i.e. from this store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mongomock import aggregate as _mm_aggregate

from ._codec import from_view, to_view
from ._errors import DocumentStoreError
from ._matching import FOREIGN_ERRORS
from ._regex import safe_patterns

__all__ = ["run_pipeline"]

# Untyped upstream; kept Any at this border.
mm_aggregate: Any = _mm_aggregate

#: ``find(collection_name, filter) -> documents`` for ``$lookup``.
Finder = Callable[[str, Mapping[str, Any]], list[dict[str, Any]]]


class _Collection:
    def __init__(self, name: str, finder: Finder) -> None:
        self._name = name
        self._finder = finder

    def find(self, filter: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        docs = self._finder(self._name, filter or {})
        return [to_view(d) for d in docs]


class _Database:
    """The slice of a mongomock database that ``$lookup``/``$graphLookup`` use."""

    def __init__(self, finder: Finder) -> None:
        self._finder = finder

    def get_collection(self, name: str) -> _Collection:
        return _Collection(name, self._finder)

    def __getitem__(self, name: str) -> _Collection:
        return self.get_collection(name)


def _rewrite(pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(pipeline, list | tuple):
        raise DocumentStoreError("a pipeline must be an array of stages")
    out: list[dict[str, Any]] = []
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise DocumentStoreError("each pipeline stage must be a document with exactly one field")
        ((name, spec),) = stage.items()
        if name in ("$out", "$merge"):
            raise DocumentStoreError(f"{name} is not supported by the embedded store")
        if name == "$unset":
            fields = [spec] if isinstance(spec, str) else spec
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise DocumentStoreError("$unset expects a field name or an array of field names")
            out.append({"$project": {f: 0 for f in fields}})
        elif name == "$group" and isinstance(spec, Mapping):
            group = dict(spec)
            for field, acc in spec.items():
                if isinstance(acc, Mapping) and set(acc) == {"$count"}:
                    group[field] = {"$sum": 1}
            out.append({"$group": group})
        else:
            out.append({name: spec})
    return out


def run_pipeline(
    docs: list[dict[str, Any]], pipeline: Sequence[Mapping[str, Any]], finder: Finder
) -> list[dict[str, Any]]:
    """Run ``pipeline`` over ``docs`` (private copies, consumed) and return fresh result documents."""
    stages = _rewrite(pipeline)
    views = [to_view(d) for d in docs]
    try:
        cursor = mm_aggregate.process_pipeline(views, _Database(finder), safe_patterns(to_view(stages)), None)
        results = list(cursor)
    except DocumentStoreError:
        raise
    except FOREIGN_ERRORS as exc:
        raise DocumentStoreError(f"bad aggregation pipeline: {exc}") from None
    return [from_view(r) for r in results]
