"""Rule expressions (App Services' rule expressions): expansions, operators, implicit AND.

An expression is ``true``, ``false`` or an object. Each key is a field name (a
plain ``f`` means ``%%root.f``), an expansion (``%%user.id``...) or a logical
operator (``%and``, ``%or``, ``%not``); every key must hold. A key's value is a
literal or an expansion (the key's value must equal it; an array contains it),
or an object of tests (``%exists``, ``%in``, ``%nin``, ``$eq``... ``%and`` /
``%or`` / ``%not`` of tests), or a value operator (``%function``,
``%stringToOid``, ``%oidToString``, ``%stringToUuid``, ``%uuidToString``)
whose result the key must equal.

A missing value (``%%prevRoot`` on insert, an absent field) never equals
anything, so a rule cannot be satisfied by leaving a field out.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
from bson.errors import InvalidId
from bson.objectid import ObjectId

__all__ = [
    "MISSING",
    "ExpressionEnv",
    "FunctionHook",
    "RuleEvaluationError",
    "Scope",
    "check_expression",
    "evaluate",
    "expand",
]


class _Missing:
    """The value of an expansion or field that does not exist."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

#: ``%function``: ``await hook(name, arguments)`` -> the function's return value.
FunctionHook = Callable[[str, list[Any]], Awaitable[Any]]


class RuleEvaluationError(ValueError):
    """An expression could not be evaluated (a failing ``%function``, no function hook...)."""


@attrs.frozen
class ExpressionEnv:
    """What an expression may see besides the document: the same for a whole request."""

    #: ``%%user``: ``{id, type, data, custom_data, identities}``.
    user: Mapping[str, Any] = attrs.field(factory=dict)
    values: Mapping[str, Any] = attrs.field(factory=dict)
    #: ``%%environment``: ``{tag, values}``.
    environment: Mapping[str, Any] = attrs.field(factory=lambda: {"tag": "", "values": {}})
    request: Mapping[str, Any] = attrs.field(factory=dict)
    args: Any = MISSING
    function: FunctionHook | None = None


@attrs.frozen
class Scope:
    """The document expansions: ``%%root``/``%%prevRoot`` and, inside a field, ``%%this``/``%%prev``."""

    root: Any = MISSING
    prev_root: Any = MISSING
    this: Any = MISSING
    prev: Any = MISSING


NO_DOCUMENT: Final = Scope()

_LOGICAL = frozenset({"%and", "%or", "%not"})
_VALUE_OPS = frozenset({"%function", "%stringToOid", "%oidToString", "%stringToUuid", "%uuidToString"})
_TESTS = frozenset(
    {"%exists", "$exists", "%in", "$in", "%nin", "$nin", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}
)
_BASES = frozenset(
    {"user", "root", "prevRoot", "this", "prev", "values", "environment", "request", "args", "true", "false"}
)


# ------------------------------------------------------------------------------------ static check


def check_expression(expr: Any, where: str = "") -> None:
    """Raise ``ValueError`` naming the key path if ``expr`` is not a well-formed expression."""
    if isinstance(expr, bool):
        return
    if not isinstance(expr, Mapping):
        raise ValueError(f"{where or 'expression'} must be true, false or an object")
    for key, value in expr.items():
        at = f"{where}.{key}" if where else str(key)
        if not isinstance(key, str) or not key:
            raise ValueError(f"{at}: keys must be non-empty strings")
        if key in ("%and", "%or"):
            if not isinstance(value, list):
                raise ValueError(f"{at} must be an array of expressions")
            for i, sub in enumerate(value):
                check_expression(sub, f"{at}[{i}]")
        elif key == "%not":
            check_expression(value, at)
        elif key in _VALUE_OPS:
            _check_value_op(key, value, at)
        elif key.startswith("%%"):
            _check_expansion(key, at)
            _check_test(value, at)
        elif key.startswith(("%", "$")):
            raise ValueError(f"{at} is not a known operator")
        else:
            _check_test(value, at)


def check_query(query: Mapping[str, Any], where: str) -> None:
    """Raise ``ValueError`` if a filter's MongoDB ``query`` holds an unknown ``%%`` expansion or operator.

    The query itself is the document store's to judge at request time; what only the rules know,
    the expansions substituted into it, is checked when the rules load.
    """
    _check_value(query, where)


def _check_expansion(text: str, where: str) -> None:
    base = text[2:].split(".", 1)[0]
    if base not in _BASES:
        raise ValueError(f"{where}: unknown expansion {text!r}")


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, str) and value.startswith("%%"):
        _check_expansion(value, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
    elif isinstance(value, Mapping):
        if len(value) == 1 and next(iter(value)) in _VALUE_OPS:
            key = next(iter(value))
            _check_value_op(key, value[key], f"{where}.{key}")
            return
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("%") and not key.startswith("%%"):
                raise ValueError(f"{where}.{key} is not allowed in a value")
            _check_value(item, f"{where}.{key}")


def _check_value_op(key: str, value: Any, where: str) -> None:
    if key == "%function":
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str) or not value["name"]:
            raise ValueError(f"{where} needs a 'name' string")
        unknown = set(value) - {"name", "arguments"}
        if unknown:
            raise ValueError(f"{where}.{sorted(unknown)[0]} is not a known key")
        arguments = value.get("arguments", [])
        if not isinstance(arguments, list):
            raise ValueError(f"{where}.arguments must be an array")
        _check_value(arguments, f"{where}.arguments")
    else:
        _check_value(value, where)


def _check_test(spec: Any, where: str) -> None:
    if isinstance(spec, Mapping) and spec and all(isinstance(k, str) and k[:1] in "%$" for k in spec):
        if len(spec) == 1 and next(iter(spec)) in _VALUE_OPS:
            key = next(iter(spec))
            _check_value_op(key, spec[key], f"{where}.{key}")
            return
        for op, arg in spec.items():
            at = f"{where}.{op}"
            if op in ("%and", "%or"):
                if not isinstance(arg, list):
                    raise ValueError(f"{at} must be an array")
                for i, sub in enumerate(arg):
                    _check_test(sub, f"{at}[{i}]")
            elif op == "%not":
                _check_test(arg, at)
            elif op in _TESTS:
                _check_value(arg, at)
            elif op.startswith("%%"):
                raise ValueError(f"{at}: an expansion cannot be a key inside a test")
            else:
                raise ValueError(f"{at} is not a known operator")
        return
    _check_value(spec, where)


# ---------------------------------------------------------------------------------------- evaluate


async def evaluate(expr: Any, env: ExpressionEnv, scope: Scope = NO_DOCUMENT) -> bool:
    """Whether ``expr`` holds for ``env`` and the document ``scope``."""
    if isinstance(expr, bool):
        return expr
    if not isinstance(expr, Mapping):
        raise RuleEvaluationError("an expression must be true, false or an object")
    for key, value in expr.items():
        if key in ("%and", "%or"):
            results = [await evaluate(sub, env, scope) for sub in value]
            ok = all(results) if key == "%and" else any(results)
        elif key == "%not":
            ok = not await evaluate(value, env, scope)
        elif key in _VALUE_OPS:
            ok = await _value_op(key, value, env, scope) is True
        elif key.startswith("%%"):
            ok = await _test(_expansion(key, env, scope), value, env, scope)
        elif key.startswith(("%", "$")):
            raise RuleEvaluationError(f"unknown operator {key!r}")
        else:
            ok = await _test(_path(scope.root, key.split(".")), value, env, scope)
        if not ok:
            return False
    return True


async def expand(value: Any, env: ExpressionEnv, scope: Scope = NO_DOCUMENT) -> Any:
    """``value`` with every expansion replaced and every value operator applied."""
    if isinstance(value, str):
        return _expansion(value, env, scope) if value.startswith("%%") else value
    if isinstance(value, list):
        return [await expand(item, env, scope) for item in value]
    if isinstance(value, Mapping):
        if len(value) == 1:
            key = next(iter(value))
            if key in _VALUE_OPS:
                return await _value_op(key, value[key], env, scope)
        return {key: await expand(item, env, scope) for key, item in value.items()}
    return value


def _expansion(text: str, env: ExpressionEnv, scope: Scope) -> Any:
    base, _, rest = text[2:].partition(".")
    path = rest.split(".") if rest else []
    start: Any
    if base == "true":
        start = True
    elif base == "false":
        start = False
    elif base == "user":
        start = env.user
    elif base == "root":
        start = scope.root
    elif base == "prevRoot":
        start = scope.prev_root
    elif base == "this":
        start = scope.this
    elif base == "prev":
        start = scope.prev
    elif base == "values":
        start = env.values
    elif base == "environment":
        start = env.environment
    elif base == "request":
        start = env.request
    elif base == "args":
        start = env.args
    else:
        raise RuleEvaluationError(f"unknown expansion {text!r}")
    return _path(start, path)


def _path(value: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return MISSING
    return value


async def _value_op(key: str, arg: Any, env: ExpressionEnv, scope: Scope) -> Any:
    if key == "%function":
        if env.function is None:
            raise RuleEvaluationError("%function is not available here")
        arguments = await expand(arg.get("arguments", []), env, scope)
        return await env.function(str(arg["name"]), [None if a is MISSING else a for a in arguments])
    # The conversions expand their argument but apply no nested operators (App Services).
    value = _expansion(arg, env, scope) if isinstance(arg, str) and arg.startswith("%%") else arg
    try:
        if key == "%stringToOid":
            return value if isinstance(value, ObjectId) else ObjectId(value)
        if key == "%oidToString":
            return str(value) if isinstance(value, ObjectId) else MISSING
        if key == "%stringToUuid":
            return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
        if key == "%uuidToString":
            return str(value) if isinstance(value, uuid.UUID) else MISSING
    except (TypeError, ValueError, AttributeError, InvalidId):
        return MISSING  # an id that does not convert never matches anything
    raise RuleEvaluationError(f"unknown operator {key!r}")


async def _test(left: Any, spec: Any, env: ExpressionEnv, scope: Scope) -> bool:
    if isinstance(spec, Mapping) and spec and all(isinstance(k, str) and k[:1] in "%$" for k in spec):
        if len(spec) == 1 and next(iter(spec)) in _VALUE_OPS:
            return _equal(left, await expand(spec, env, scope))
        for op, arg in spec.items():
            if not await _operator(op, left, arg, env, scope):
                return False
        return True
    return _equal(left, await expand(spec, env, scope))


async def _operator(op: str, left: Any, arg: Any, env: ExpressionEnv, scope: Scope) -> bool:
    if op in ("%and", "%or"):
        results = [await _test(left, sub, env, scope) for sub in arg]
        return all(results) if op == "%and" else any(results)
    if op == "%not":
        return not await _test(left, arg, env, scope)
    right = await expand(arg, env, scope)
    if op in ("%exists", "$exists"):
        return (left is not MISSING) == bool(right)
    if op == "$eq":
        return _equal(left, right)
    if op == "$ne":
        return not _equal(left, right)
    if op in ("%in", "$in", "%nin", "$nin"):
        if not isinstance(right, list):
            return False  # a malformed list never grants (for %nin neither)
        hit = any(_equal(left, candidate) for candidate in right)
        return hit if op in ("%in", "$in") else not hit
    if op in ("$gt", "$gte", "$lt", "$lte"):
        candidates = left if isinstance(left, list) else [left]
        return any(_compare(op, item, right) for item in candidates)
    raise RuleEvaluationError(f"unknown operator {op!r}")


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    try:
        return bool(a == b)
    except Exception:  # exotic values that refuse comparison are simply unequal
        return False


def _equal(left: Any, right: Any) -> bool:
    """MQL equality: an array matches a value it contains, or an equal array."""
    if _same(left, right):
        return True
    return isinstance(left, list) and not isinstance(right, list) and any(_same(x, right) for x in left)


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime.datetime):
        return "date"
    if isinstance(value, ObjectId):
        return "oid"
    return None


def _compare(op: str, left: Any, right: Any) -> bool:
    kind = _kind(left)
    if kind is None or kind != _kind(right):
        return False
    try:
        if op == "$gt":
            return bool(left > right)
        if op == "$gte":
            return bool(left >= right)
        if op == "$lt":
            return bool(left < right)
        return bool(left <= right)
    except TypeError:  # naive vs aware datetimes
        return False
