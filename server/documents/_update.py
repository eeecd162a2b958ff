"""MongoDB update semantics: operators, positional paths, array filters, replacements, upsert seeds.

Written here rather than borrowed because the candidates measured lacked parts
the server needs (mongomock: ``$mul``, ``$[]``, ``$[<id>]``/arrayFilters, Int64
arithmetic, seeding upserts from ``$and``/``$eq``; montydb: Int64 arithmetic).
Every function works on a private copy of a document, so a failed update leaves
the stored one untouched.
"""

from __future__ import annotations

import copy
import decimal
import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.timestamp import Timestamp

from ._codec import id_key, to_view, utcnow
from ._errors import DocumentStoreError
from ._matching import compare, matches, prepare_filter

__all__ = ["apply_update", "is_replacement", "seed_from_filter", "validate_update"]

_OPERATORS = frozenset(
    {
        "$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$push", "$addToSet",
        "$pull", "$pullAll", "$pop", "$currentDate", "$setOnInsert",
    }
)  # fmt: skip

Container = dict[str, Any] | list[Any]


def is_replacement(update: Mapping[str, Any]) -> bool:
    """True for a replacement document, False for an operator document; rejects a mix."""
    if not isinstance(update, Mapping):
        if isinstance(update, list):
            raise DocumentStoreError("update pipelines are not supported by the embedded store")
        raise DocumentStoreError(f"an update must be a document, not {type(update).__name__}")
    dollar = [k.startswith("$") for k in update]
    if dollar and all(dollar):
        return False
    if any(dollar):
        raise DocumentStoreError("an update document cannot mix operators and plain fields")
    return True


def validate_update(update: Mapping[str, Any]) -> None:
    """Reject unknown operators, non-document arguments and conflicting paths before touching data."""
    seen: list[str] = []
    for op, spec in update.items():
        if op not in _OPERATORS:
            raise DocumentStoreError(f"unknown update operator: {op}")
        if not isinstance(spec, Mapping):
            raise DocumentStoreError(f"modifiers for {op} must be a document")
        for path in spec:
            paths = [path, spec[path]] if op == "$rename" else [path]
            for p in paths:
                if not isinstance(p, str) or not p or p.startswith(".") or p.endswith(".") or ".." in p:
                    raise DocumentStoreError(f"{op}: bad field path {p!r}")
                plain = _plain(p)
                for other in seen:
                    if plain == other or plain.startswith(other + ".") or other.startswith(plain + "."):
                        raise DocumentStoreError(
                            f"updating the path {p!r} would create a conflict at {other!r}"
                        )
                seen.append(plain)


def _plain(path: str) -> str:
    # Positional parts collapse so that "a.$.b" and "a.$[].b" count as one path for conflicts.
    return ".".join("$" if part.startswith("$") else part for part in path.split("."))


def seed_from_filter(filter: Mapping[str, Any]) -> dict[str, Any]:
    """The document an upsert starts from: the filter's equality conditions (also inside ``$and``)."""
    seed: dict[str, Any] = {}

    def visit(query: Mapping[str, Any]) -> None:
        for key, cond in query.items():
            if key == "$and" and isinstance(cond, list):
                for sub in cond:
                    if isinstance(sub, Mapping):
                        visit(sub)
                continue
            if key.startswith("$"):
                continue
            if isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond):
                if "$eq" in cond:
                    _set_path(seed, key, copy.deepcopy(cond["$eq"]))
                continue
            _set_path(seed, key, copy.deepcopy(cond))

    visit(filter)
    return seed


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


class _Context:
    """Per-document facts positional paths need: the query (for ``$``) and the array filters."""

    def __init__(
        self,
        doc: dict[str, Any],
        filter: Mapping[str, Any],
        array_filters: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        self.doc = doc
        self.filter = filter
        self.filters: dict[str, dict[str, Any]] = {}
        for af in array_filters or ():
            if not isinstance(af, Mapping) or not af:
                raise DocumentStoreError("each array filter must be a non-empty document")
            names = {str(k).split(".", 1)[0] for k in af}
            if len(names) != 1:
                raise DocumentStoreError("an array filter must use exactly one identifier")
            (name,) = names
            if name in self.filters:
                raise DocumentStoreError(
                    f"found multiple array filters with the same top-level field name {name}"
                )
            self.filters[name] = dict(af)

    def element_matches(self, name: str, element: Any) -> bool:
        try:
            spec = self.filters[name]
        except KeyError:
            raise DocumentStoreError(f"no array filter found for identifier {name!r}") from None
        for key, cond in spec.items():
            if key == name:
                if not matches(prepare_filter({"v": cond}), {"v": to_view(element)}):
                    return False
            else:
                rest = key.split(".", 1)[1]
                if not isinstance(element, dict) or not matches(
                    prepare_filter({rest: cond}), to_view(element)
                ):
                    return False
        return True

    def positional_index(self, array_path: str, array: list[Any]) -> int:
        """Index of the first element of ``array`` that made the query match (MongoDB's ``$``)."""
        for key, cond in _flatten_and(self.filter):
            if key == array_path:
                if isinstance(cond, Mapping) and "$elemMatch" in cond:
                    probe = cond["$elemMatch"]
                    if (
                        isinstance(probe, Mapping)
                        and probe
                        and not all(str(k).startswith("$") for k in probe)
                    ):
                        found = [
                            isinstance(e, dict) and matches(prepare_filter(probe), to_view(e)) for e in array
                        ]
                    else:
                        found = [matches(prepare_filter({"v": probe}), {"v": to_view(e)}) for e in array]
                else:
                    found = [matches(prepare_filter({"v": cond}), {"v": to_view(e)}) for e in array]
            elif key.startswith(array_path + "."):
                rest = key[len(array_path) + 1 :]
                found = [
                    isinstance(e, dict) and matches(prepare_filter({rest: cond}), to_view(e)) for e in array
                ]
            else:
                continue
            if any(found):
                return found.index(True)
        raise DocumentStoreError("the positional operator did not find the match needed from the query")


def _flatten_and(query: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, cond in query.items():
        if key == "$and" and isinstance(cond, list):
            for sub in cond:
                if isinstance(sub, Mapping):
                    yield from _flatten_and(sub)
        elif not key.startswith("$"):
            yield key, cond


def _targets(ctx: _Context, path: str, *, create: bool) -> list[tuple[Container, str | int]]:
    """The (container, key) slots a path names; with ``create`` missing documents are made on the way."""
    parts = path.split(".")
    out: list[tuple[Container, str | int]] = []

    def walk(node: Container, i: int, prefix: str) -> None:
        part = parts[i]
        last = i == len(parts) - 1
        if isinstance(node, list):
            keys = _array_keys(ctx, node, part, prefix, path, create)
        else:
            if part.startswith("$"):
                raise DocumentStoreError(
                    f"cannot apply the positional operator {part!r} to a non-array in {path!r}"
                )
            keys = [part]
        for key in keys:
            # Array indices stay out of the prefix: "$" is resolved against the query's field path.
            here = prefix if isinstance(key, int) else f"{prefix}.{part}" if prefix else part
            if last:
                out.append((node, key))
                continue
            child = _get(node, key)
            if child is _MISSING:
                if not create:
                    continue
                child = {}
                _put(node, key, child)
            if isinstance(child, dict | list):
                walk(child, i + 1, here)
            elif create:
                raise DocumentStoreError(
                    f"cannot create field {parts[i + 1]!r} in element {{{part}: {child!r}}}"
                )

    walk(ctx.doc, 0, "")
    return out


def _array_keys(
    ctx: _Context, array: list[Any], part: str, prefix: str, path: str, create: bool
) -> list[int | str]:
    if part == "$[]":
        return list(range(len(array)))
    if part.startswith("$[") and part.endswith("]"):
        name = part[2:-1]
        return [i for i, element in enumerate(array) if ctx.element_matches(name, element)]
    if part == "$":
        return [ctx.positional_index(prefix, array)]
    if part.isdigit():
        index = int(part)
        if index >= len(array) and create:
            array.extend([None] * (index + 1 - len(array)))
        return [index]
    if create:
        raise DocumentStoreError(f"cannot create field {part!r} in an array (path {path!r})")
    return []


class _Missing:
    pass


_MISSING: Any = _Missing()


def _get(node: Container, key: str | int) -> Any:
    if isinstance(node, list):
        assert isinstance(key, int)
        return node[key] if key < len(node) else _MISSING
    assert isinstance(key, str)
    return node.get(key, _MISSING)


def _put(node: Container, key: str | int, value: Any) -> None:
    if isinstance(node, list):
        assert isinstance(key, int)
        if key >= len(node):
            node.extend([None] * (key + 1 - len(node)))
        node[key] = value
    else:
        assert isinstance(key, str)
        node[key] = value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal128) and not isinstance(value, bool)


def _arith(op: str, current: Any, operand: Any) -> Any:
    """``current (+|*) operand`` keeping MongoDB's result type: decimal > double > long > int."""
    if isinstance(current, Decimal128) or isinstance(operand, Decimal128):
        a = current.to_decimal() if isinstance(current, Decimal128) else decimal.Decimal(current)
        b = operand.to_decimal() if isinstance(operand, Decimal128) else decimal.Decimal(operand)
        with decimal.localcontext() as ctx:
            ctx.prec = 34
            return Decimal128(a + b if op == "$inc" else a * b)
    if isinstance(current, float) or isinstance(operand, float):
        return float(current) + float(operand) if op == "$inc" else float(current) * float(operand)
    result = current + operand if op == "$inc" else current * operand
    if not -(2**63) <= result < 2**63:
        raise DocumentStoreError(f"integer overflow in {op}")
    return Int64(result) if isinstance(current, Int64) or isinstance(operand, Int64) else int(result)


def _equal(a: Any, b: Any) -> bool:
    """MongoDB equality for $addToSet/$pullAll: 1 == 1.0 == Int64(1); documents field by field, in order."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and list(a) == list(b)
            and all(_equal(a[k], b[k]) for k in a)
        )
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(id_key(a) == id_key(b))


def _push(op: str, target: Any, arg: Any, path: str) -> list[Any]:
    if target is _MISSING:
        target = []
    if not isinstance(target, list):
        raise DocumentStoreError(f"the field {path!r} must be an array for {op}")
    each_form = isinstance(arg, Mapping) and "$each" in arg
    if op == "$addToSet":
        items = list(arg["$each"]) if each_form else [arg]
        if each_form and set(arg) != {"$each"}:
            raise DocumentStoreError("$addToSet only supports the $each modifier")
        for item in items:
            if not any(_equal(item, existing) for existing in target):
                target.append(copy.deepcopy(item))
        return target
    if not each_form:
        target.append(copy.deepcopy(arg))
        return target
    unknown = set(arg) - {"$each", "$slice", "$sort", "$position"}
    if unknown:
        raise DocumentStoreError(f"unrecognized clause in $push: {sorted(unknown)[0]}")
    each = arg["$each"]
    if not isinstance(each, list):
        raise DocumentStoreError("the argument to $each in $push must be an array")
    items = copy.deepcopy(each)
    position = arg.get("$position")
    if position is None:
        target.extend(items)
    else:
        if not isinstance(position, int) or isinstance(position, bool):
            raise DocumentStoreError("$position must be an integer")
        if position < 0:
            position = max(len(target) + position, 0)
        target[position:position] = items
    if "$sort" in arg:
        _sort_array(target, arg["$sort"])
    if "$slice" in arg:
        n = arg["$slice"]
        if not isinstance(n, int) or isinstance(n, bool):
            raise DocumentStoreError("$slice must be an integer")
        target[:] = target[:n] if n >= 0 else target[n:]
    return target


def _sort_array(array: list[Any], spec: Any) -> None:
    if spec in (1, -1) and not isinstance(spec, bool):
        array.sort(key=functools.cmp_to_key(compare), reverse=spec == -1)
        return
    if not isinstance(spec, Mapping) or not spec:
        raise DocumentStoreError("$sort in $push must be 1, -1 or a document of field directions")
    fields = list(spec.items())

    def cmp(a: Any, b: Any) -> int:
        for field, direction in fields:
            va = a.get(field) if isinstance(a, dict) else None
            vb = b.get(field) if isinstance(b, dict) else None
            order = compare(va, vb)
            if order:
                return order * (1 if direction == 1 else -1)
        return 0

    array.sort(key=functools.cmp_to_key(cmp))


def _pull_matches(cond: Any, element: Any) -> bool:
    if isinstance(cond, Mapping):
        if cond and all(str(k).startswith("$") for k in cond):
            return matches(prepare_filter({"v": cond}), {"v": to_view(element)})
        return isinstance(element, dict) and matches(prepare_filter(cond), to_view(element))
    return _equal(cond, element)


def apply_update(
    doc: dict[str, Any],
    update: Mapping[str, Any],
    *,
    filter: Mapping[str, Any],
    array_filters: Sequence[Mapping[str, Any]] | None = None,
    inserting: bool = False,
) -> dict[str, Any]:
    """Apply an operator document to ``doc`` (mutated and returned); ``inserting`` runs ``$setOnInsert``."""
    validate_update(update)
    ctx = _Context(doc, filter, array_filters)
    original_id = doc.get("_id", _MISSING)
    for op, spec in update.items():
        if op == "$setOnInsert" and not inserting:
            continue
        for path, arg in spec.items():
            _apply_one(ctx, op, path, arg)
    referenced = {n for spec in update.values() for p in spec for n in _identifiers(p)}
    unreferenced = set(ctx.filters) - referenced
    if unreferenced:
        raise DocumentStoreError(
            f"the array filter for identifier {sorted(unreferenced)[0]!r} was not used in the update"
        )
    if original_id is not _MISSING and ("_id" not in doc or id_key(doc["_id"]) != id_key(original_id)):
        raise DocumentStoreError(
            "performing an update on the path '_id' would modify the immutable field '_id'"
        )
    return doc


def _identifiers(path: str) -> list[str]:
    return [p[2:-1] for p in path.split(".") if p.startswith("$[") and p.endswith("]") and len(p) > 3]


def _apply_one(ctx: _Context, op: str, path: str, arg: Any) -> None:
    if op in ("$set", "$setOnInsert"):
        for node, key in _targets(ctx, path, create=True):
            _put(node, key, copy.deepcopy(arg))
    elif op == "$unset":
        for node, key in _targets(ctx, path, create=False):
            if isinstance(node, list):
                if isinstance(key, int) and key < len(node):
                    node[key] = None  # MongoDB keeps array positions: an unset element becomes null
            else:
                assert isinstance(key, str)
                node.pop(key, None)
    elif op in ("$inc", "$mul"):
        if not _is_number(arg):
            raise DocumentStoreError(f"cannot {op[1:]} with non-numeric argument: {{{path}: {arg!r}}}")
        for node, key in _targets(ctx, path, create=True):
            current = _get(node, key)
            if current is _MISSING:
                _put(node, key, arg if op == "$inc" else _arith("$mul", _zero_like(arg), 0))
            elif not _is_number(current):
                raise DocumentStoreError(
                    f"cannot apply {op} to a value of non-numeric type"
                    f" (field {path!r} is {type(current).__name__})"
                )
            else:
                _put(node, key, _arith(op, current, arg))
    elif op in ("$min", "$max"):
        for node, key in _targets(ctx, path, create=True):
            current = _get(node, key)
            order = 0 if current is _MISSING else compare(arg, current)
            if current is _MISSING or (order < 0 if op == "$min" else order > 0):
                _put(node, key, copy.deepcopy(arg))
    elif op == "$rename":
        if "$" in path or "$" in str(arg):
            raise DocumentStoreError("$rename does not support positional or array paths")
        sources = _targets(ctx, path, create=False)
        for node, key in sources:
            if isinstance(node, dict) and key in node:
                assert isinstance(key, str)
                moved = node.pop(key)
                for tnode, tkey in _targets(ctx, arg, create=True):
                    _put(tnode, tkey, moved)
    elif op in ("$push", "$addToSet"):
        for node, key in _targets(ctx, path, create=True):
            _put(node, key, _push(op, _get(node, key), arg, path))
    elif op in ("$pull", "$pullAll"):
        if op == "$pullAll" and not isinstance(arg, list):
            raise DocumentStoreError("$pullAll requires an array argument")
        for node, key in _targets(ctx, path, create=False):
            current = _get(node, key)
            if current is _MISSING:
                continue
            if not isinstance(current, list):
                raise DocumentStoreError(f"cannot apply {op} to a non-array value (field {path!r})")
            if op == "$pull":
                current[:] = [e for e in current if not _pull_matches(arg, e)]
            else:
                current[:] = [e for e in current if not any(_equal(v, e) for v in arg)]
    elif op == "$pop":
        if arg not in (1, -1) or isinstance(arg, bool):
            raise DocumentStoreError("$pop expects 1 or -1")
        for node, key in _targets(ctx, path, create=False):
            current = _get(node, key)
            if current is _MISSING:
                continue
            if not isinstance(current, list):
                raise DocumentStoreError(f"path {path!r} contains an element of non-array type")
            if current:
                current.pop(-1 if arg == 1 else 0)
    elif op == "$currentDate":
        kind = arg.get("$type") if isinstance(arg, Mapping) else ("date" if arg is True else None)
        if kind not in ("date", "timestamp"):
            raise DocumentStoreError("$currentDate expects true or {$type: 'date' | 'timestamp'}")
        value: Any = utcnow() if kind == "date" else Timestamp(int(time.time()), 1)
        for node, key in _targets(ctx, path, create=True):
            _put(node, key, value)


def _zero_like(value: Any) -> Any:
    if isinstance(value, Decimal128):
        return Decimal128("0")
    if isinstance(value, float):
        return 0.0
    if isinstance(value, Int64):
        return Int64(0)
    return 0
