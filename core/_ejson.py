"""Extended JSON on the wire, through pymongo's reference codec (``bson.json_util``).

Requests are canonical EJSON (every number typed, so an ``Int64`` stays 64-bit
and a ``Decimal128`` stays decimal); responses are read in either mode.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from bson import json_util

__all__ = ["decode", "dumps", "from_json_value", "loads"]

_CANONICAL = json_util.JSONOptions(
    json_mode=json_util.JSONMode.CANONICAL,
    tz_aware=True,
    tzinfo=datetime.UTC,
    uuid_representation=4,  # STANDARD: uuid.UUID <-> $binary subtype 04
)
_READ = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED,
    tz_aware=True,
    tzinfo=datetime.UTC,
    uuid_representation=4,
)


def dumps(value: Any) -> str:
    """``value`` as canonical EJSON text."""
    return json_util.dumps(value, json_options=_CANONICAL, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """EJSON text (canonical or relaxed) to Python/BSON values. Raises ``ValueError``."""
    return json_util.loads(text, json_options=_READ)


def decode(value: Any) -> Any:
    """Already-parsed plain JSON (e.g. a JWT claim) to Python/BSON values."""
    if isinstance(value, dict | list):
        return loads(json.dumps(value))
    return value


def from_json_value(value: Any) -> Any:
    """Alias of :func:`decode` kept for readability at call sites."""
    return decode(value)
