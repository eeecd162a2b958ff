"""Extended JSON in and out: accept canonical and relaxed, emit canonical.

pymongo's ``bson.json_util`` is the reference codec. Input is parsed in canonical
mode so ``{"$numberLong": "5"}`` stays an ``Int64`` (relaxed input has plain numbers
anyway), and dates come back timezone-aware in UTC.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from bson import json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONMode, JSONOptions

__all__ = ["dumps", "loads", "to_canonical", "to_claim"]

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


def loads(text: str | bytes) -> Any:
    """Parse canonical or relaxed EJSON into BSON-typed Python values.

    Raises ``ValueError`` (``json.JSONDecodeError`` or a bson error wrapped as one)
    for anything that is not valid EJSON.
    """
    try:
        return json_util.loads(text, json_options=_LOAD_OPTIONS)
    except ValueError:
        raise
    except Exception as exc:  # bson raises TypeError/InvalidId/... on bad wrappers
        raise ValueError(f"invalid extended JSON: {type(exc).__name__}") from None


def dumps(value: Any) -> str:
    """Serialise ``value`` as canonical EJSON text (compact separators)."""
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
