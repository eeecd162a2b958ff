"""``find`` projections: inclusion or exclusion of (dotted) fields, with MongoDB's ``_id`` rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import DocumentStoreError

__all__ = ["Projection"]


class Projection:
    """A checked projection, applied to many documents.

    ``_id`` is included unless the projection says ``_id: 0``; it is the only
    field an inclusion projection may exclude. Operator projections (``$slice``,
    ``$elemMatch``, ``field.$``) are rejected rather than half-done.
    """

    def __init__(self, spec: Mapping[str, Any] | None) -> None:
        self.include: bool | None = None
        self.paths: list[list[str]] = []
        self.id_shown = True
        if not spec:
            return
        if not isinstance(spec, Mapping):
            raise DocumentStoreError("a projection must be a document")
        for field, value in spec.items():
            if isinstance(value, Mapping) or (isinstance(field, str) and field.endswith(".$")):
                raise DocumentStoreError(f"projection operators are not supported: {field!r}")
            if isinstance(value, bool | int | float):
                on = bool(value)
            else:
                raise DocumentStoreError(
                    f"projection values must be 0/1 or true/false, got {value!r} for {field!r}"
                )
            if field == "_id":
                self.id_shown = on
                continue
            if self.include is None:
                self.include = on
            elif self.include != on:
                kind = "exclusion" if not on else "inclusion"
                other = "inclusion" if not on else "exclusion"
                raise DocumentStoreError(f"cannot do {kind} on field {field!r} in {other} projection")
            self.paths.append(field.split("."))
        if self.include is None:
            # Only _id was named: {_id: 1} keeps just _id, {_id: 0} drops just _id.
            self.include = self.id_shown

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Project ``doc`` (a private copy, which may be reused)."""
        if self.include is None:
            return doc
        if self.include:
            out: dict[str, Any] = {}
            if self.id_shown and "_id" in doc:
                out["_id"] = doc["_id"]
            for path in self.paths:
                _copy_path(doc, out, path)
            # Keep the stored field order, as MongoDB does.
            return _reorder(out, doc)
        for path in self.paths:
            _drop_path(doc, path)
        if not self.id_shown:
            doc.pop("_id", None)
        return doc


def _copy_path(src: Any, dst: dict[str, Any], path: list[str]) -> None:
    head, rest = path[0], path[1:]
    if not isinstance(src, dict) or head not in src:
        return
    value = src[head]
    if not rest:
        dst[head] = value
    elif isinstance(value, dict):
        sub = dst.setdefault(head, {})
        if isinstance(sub, dict):
            _copy_path(value, sub, rest)
    elif isinstance(value, list):
        existing = dst.get(head)
        items = existing if isinstance(existing, list) else [{} for e in value if isinstance(e, dict | list)]
        kept = [e for e in value if isinstance(e, dict | list)]
        for element, target in zip(kept, items, strict=False):
            if isinstance(element, dict) and isinstance(target, dict):
                _copy_path(element, target, rest)
        dst[head] = items


def _drop_path(doc: Any, path: list[str]) -> None:
    if isinstance(doc, list):
        for element in doc:
            _drop_path(element, path)
        return
    if not isinstance(doc, dict) or path[0] not in doc:
        return
    if len(path) == 1:
        del doc[path[0]]
    else:
        _drop_path(doc[path[0]], path[1:])


def _reorder(out: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    ordered = {k: out[k] for k in like if k in out}
    for key, value in ordered.items():
        if isinstance(value, dict) and isinstance(like.get(key), dict):
            ordered[key] = _reorder(value, like[key])
    return ordered
