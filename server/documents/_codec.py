"""BSON as the store's truth: validation, copies, ``_id`` identity, and the comparison view.

Every document is encoded to BSON on the way in. That one step validates it
(only BSON-typed values), fixes its types the way a MongoDB server would
(a Python ``int`` beyond 32 bits becomes ``Int64``, datetimes lose sub-millisecond
digits) and gives the bytes that are persisted. Decoding those bytes is also the
cheapest deep copy, which is how every returned document is the caller's own.
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Mapping
from typing import Any

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.errors import BSONError
from bson.objectid import ObjectId

from ._errors import DocumentStoreError

__all__ = ["CODEC_OPTIONS", "MAX_BSON_SIZE", "decode", "encode", "from_view", "id_key", "to_view", "utcnow"]

# Naive UTC datetimes and plain dicts: what pymongo hands out by default. UUIDs as subtype 4
# (STANDARD), as the EJSON layers decode them: the default (UNSPECIFIED) refuses uuid.UUID.
_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, tz_aware=False, uuid_representation=UuidRepresentation.STANDARD
)
#: The options every document and change event is encoded and decoded with.
CODEC_OPTIONS = _OPTIONS
#: MongoDB's limit on one document's BSON size (16 MiB).
MAX_BSON_SIZE = 16 * 1024 * 1024


def encode(doc: Mapping[str, Any]) -> bytes:
    """BSON bytes of ``doc``; a non-BSON value or a bad key raises :class:`DocumentStoreError`."""
    for key in doc:
        if not isinstance(key, str):
            raise DocumentStoreError(f"document field names must be strings, not {type(key).__name__}")
        if key.startswith("$"):
            raise DocumentStoreError(f"document field names cannot start with '$': {key!r}")
    try:
        data = bson.encode(doc, codec_options=_OPTIONS)
        # Some encodable values cannot be read back (a subtype-4 Binary that is not 16 bytes, under
        # the STANDARD UUID representation): refuse them now rather than store an unloadable file.
        bson.decode(data, codec_options=_OPTIONS)
    except (BSONError, TypeError, ValueError, OverflowError) as exc:
        raise DocumentStoreError(f"document is not valid BSON: {exc}") from None
    return data


def decode(data: bytes) -> dict[str, Any]:
    """A fresh document from BSON bytes."""
    return bson.decode(data, codec_options=_OPTIONS)


def id_key(value: Any) -> Any:
    """A hashable identity for an ``_id``: values MongoDB considers equal map to the same key.

    ``1``, ``1.0`` and ``Int64(1)`` are one ``_id`` for MongoDB; so are two
    embedded documents with the same fields in the same order.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float | Decimal128 | decimal.Decimal):
        number = value.to_decimal() if isinstance(value, Decimal128) else value
        if isinstance(number, float) and (math.isnan(number) or math.isinf(number)):
            return ("n", repr(number))
        as_decimal = decimal.Decimal(number)
        if not as_decimal.is_finite():
            return ("n", str(as_decimal))
        return ("n", int(as_decimal)) if as_decimal == as_decimal.to_integral_value() else ("n", as_decimal)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, ObjectId):
        return ("o", value.binary)
    if isinstance(value, Mapping):
        return ("d", tuple((k, id_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("a", tuple(id_key(v) for v in value))
    if value is None:
        return ("z",)
    try:
        return ("x", type(value).__name__, bson.encode({"v": value}))
    except (BSONError, TypeError, ValueError):
        return ("r", type(value).__name__, repr(value))


def to_view(value: Any) -> Any:
    """``value`` with ``Decimal128`` as ``decimal.Decimal``, which the matcher can order and compare.

    Returns ``value`` itself when nothing needed converting, so documents
    without decimals cost one walk and no copy.
    """
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        # Query values arrive timezone-aware (EJSON); stored dates are naive UTC.
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        changed = {k: to_view(v) for k, v in value.items()}
        return changed if any(changed[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        items = [to_view(v) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def from_view(value: Any) -> Any:
    """Undo :func:`to_view` on aggregation output: ``decimal.Decimal`` back to ``Decimal128``.

    A pattern the pipeline carried as a value (an RE2 ``SafePattern``) goes back to a BSON ``Regex``.
    """
    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    to_bson = getattr(value, "to_bson", None)
    if to_bson is not None and not isinstance(value, dict | list):
        return to_bson()
    if isinstance(value, dict):
        return {k: from_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_view(v) for v in value]
    return value


def utcnow() -> datetime.datetime:
    """Now, as MongoDB stores it: naive UTC, millisecond precision."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
