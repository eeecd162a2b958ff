"""Extended JSON in and out: accept canonical and relaxed, emit canonical.

pymongo's ``bson.json_util`` is the reference codec. Input is parsed in canonical
mode so ``{"$numberLong": "5"}`` stays an ``Int64`` (relaxed input has plain numbers
anyway), and dates come back timezone-aware in UTC.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from bson import json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONMode, JSONOptions

__all__ = ["compact_json", "dumps", "loads", "to_canonical", "to_claim"]

_LOAD_OPTIONS = JSONOptions(
    json_mode=JSONMode.CANONICAL,
    tz_aware=True,
    tzinfo=_dt.UTC,
    uuid_representation=UuidRepresentation.STANDARD,
)
_DUMP_OPTIONS = JSONOptions(
    json_mode=JSONMode.CANONICAL,
    tz_aware=True,
    tzinfo=_dt.UTC,
    uuid_representation=UuidRepresentation.STANDARD,
)


#: A JSON escape of a UTF-16 surrogate: the only way a lone surrogate gets into parsed text
#: (raw surrogate bytes are not UTF-8 and fail decoding before this).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def loads(text: str | bytes) -> Any:
    """Parse canonical or relaxed EJSON into BSON-typed Python values.

    Raises ``ValueError`` (``json.JSONDecodeError`` or a bson error wrapped as one)
    for anything that is not valid EJSON, and for a string holding a lone UTF-16
    surrogate (``"\\ud800"``): Python accepts it, but it cannot be stored, encoded
    as UTF-8 or compared to the text a client meant, so it fails later as a 500.
    """
    try:
        # Without a "$" there is no EJSON wrapper: plain JSON decodes to the same values,
        # 4 times faster than through json_util's hooks (every request body passes here).
        if ("$" not in text) if isinstance(text, str) else (b"$" not in text):
            value = json.loads(text)
        else:
            value = json_util.loads(text, json_options=_LOAD_OPTIONS)
    except ValueError:
        raise
    except Exception as exc:  # bson raises TypeError/InvalidId/... on bad wrappers
        raise ValueError(f"invalid extended JSON: {type(exc).__name__}") from None
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise ValueError("invalid string: a lone UTF-16 surrogate is not text")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key, value or regex pattern) in ``value`` holds a surrogate.

    Iterative, so nesting as deep as the JSON parser allows cannot exhaust the stack.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(getattr(item, "pattern", None), str):
            stack.append(item.pattern)
    return False


def compact_json(value: Mapping[str, Any]) -> str:
    """``json.dumps(value, separators=(",", ":"))``, written directly for str and int values.

    ``json.dumps`` with separators builds an encoder per call, most of its cost for the small
    objects of every request (a token's claims, ``{"access_token": ...}``); other values go
    through it as before. Same text: the same C string escaping, ``int.__repr__`` for ints.
    """
    parts = []
    for key, item in value.items():
        if type(key) is not str:
            return json.dumps(value, separators=(",", ":"))
        kind = type(item)
        if kind is str:
            text = _quote(item)
        elif kind is int:
            text = int.__repr__(item)
        elif kind is dict and not item:
            text = "{}"
        else:
            text = json.dumps(item, separators=(",", ":"))
        parts.append(_quote(key) + ":" + text)
    return "{" + ",".join(parts) + "}"


def dumps(value: Any) -> str:
    """Serialise ``value`` as canonical EJSON text (compact separators)."""
    kind = type(value)
    if kind is dict and all(type(k) is str and type(v) is str for k, v in value.items()):
        # Strings need no conversion: what json_util would write (tokens, ids, error bodies).
        return compact_json(value)
    if kind is int:
        # A function's usual result: json_util's int32/int64 wrappers, without its walk.
        if _INT32_MIN <= value <= _INT32_MAX:
            return f'{{"$numberInt":"{value}"}}'
        if _INT64_MIN <= value <= _INT64_MAX:
            return f'{{"$numberLong":"{value}"}}'
    elif kind is str or value is None or kind is bool:
        return json.dumps(value)
    return json_util.dumps(value, json_options=_DUMP_OPTIONS, separators=(",", ":"))


def to_canonical(value: Any) -> Any:
    """``value`` as plain JSON data holding canonical EJSON wrappers (for JWT claims)."""
    return json.loads(dumps(value))


_NUMBER_WRAPPERS = ("$numberInt", "$numberLong", "$numberDouble")


def to_claim(value: Any) -> Any:
    """``value`` as JWT claim data: plain JSON numbers, every other BSON type canonical.

    realm-web hands ``user_data`` to the app without EJSON decoding, so a
    ``{"$numberInt": "6"}`` would reach it as an object; core reads plain integers
    as int64 and other numbers as double, so numbers need no wrapper for any client.
    Dates stay ``{"$date": {"$numberLong": ...}}``, which core requires.
    """
    return _unwrap_numbers(to_canonical(value))


def _unwrap_numbers(value: Any) -> Any:
    if isinstance(value, list):
        return [_unwrap_numbers(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key in ("$numberInt", "$numberLong") and isinstance(inner, str):
            return int(inner)
        if (
            key == "$numberDouble"
            and isinstance(inner, str)
            and inner not in ("NaN", "Infinity", "-Infinity")
        ):
            return float(inner)
        if key.startswith("$") and key not in _NUMBER_WRAPPERS:
            return value  # $date, $oid, $binary...: keep the canonical wrapper intact
    return {k: _unwrap_numbers(v) for k, v in value.items()}
