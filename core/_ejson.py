"""Extended JSON on the wire, through pymongo's reference codec (``bson.json_util``).

Requests are canonical EJSON (every number typed, so an ``Int64`` stays 64-bit
and a ``Decimal128`` stays decimal); responses are read in either mode.
"""

from __future__ import annotations

import functools
import json
import json.encoder
from collections.abc import Callable
from typing import Any, Final

from ._models import FrozenDict, FrozenList

__all__ = ["decode", "dumps", "dumps_call", "loads", "loads_plain"]


@functools.cache
def _bson() -> tuple[Any, Any, Any]:
    """bson's codec and the two option sets, imported on first need: plain JSON (most calls)
    never needs it, and importing bson was a tenth of ``import appusers``."""
    import datetime

    from bson import json_util

    canonical = json_util.JSONOptions(
        json_mode=json_util.JSONMode.CANONICAL,
        tz_aware=True,
        tzinfo=datetime.UTC,
        uuid_representation=4,  # STANDARD: uuid.UUID <-> $binary subtype 04
    )
    read = json_util.JSONOptions(
        json_mode=json_util.JSONMode.RELAXED,
        tz_aware=True,
        tzinfo=datetime.UTC,
        uuid_representation=4,
    )
    return json_util, canonical, read


_INT32 = range(-(2**31), 2**31)
_INFINITIES = (float("inf"), float("-inf"))


def _plain(value: Any) -> bool:
    """Whether ``value`` means the same in plain JSON and in EJSON (no BSON types, no int64)."""
    # Plain loops, not all(<generator>): this runs on every argument of every call.
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return value in _INT32  # larger ints must be typed as $numberLong
    if kind is float:
        return value == value and value not in _INFINITIES
    if kind is list or kind is tuple or kind is FrozenList:
        for item in value:
            item_kind = type(item)
            # Strings and small ints (the usual arguments) without a call.
            if item_kind is str or (item_kind is int and item in _INT32):
                continue
            if not _plain(item):
                return False
        return True
    if kind is dict or kind is FrozenDict:
        for key, item in value.items():
            if type(key) is not str or key.startswith("$"):
                return False
            item_kind = type(item)
            if item_kind is str or (item_kind is int and item in _INT32):
                continue
            if not _plain(item):
                return False
        return True
    return False


def dumps(value: Any) -> str:
    """``value`` as EJSON text: canonical wherever a type needs it.

    Plain data (strings, small ints, finite floats, lists, dicts) reads the same in
    every EJSON mode, so it skips bson's slower converter; everything else
    (ObjectId, datetime, Decimal128, Int64, big ints...) is written canonically.
    """
    if _plain(value):
        return _encode_plain(value)
    json_util, canonical, _ = _bson()
    text: str = json_util.dumps(value, json_options=canonical, separators=(",", ":"))
    return text


def dumps_call(name: str, arguments: list[Any], service: str | None = None) -> str:
    """A function call's body, ``{"name": name, "arguments": arguments}`` (and ``"service"``
    when given), as :func:`dumps` writes it. Its keys never need EJSON, so only the arguments
    are walked to decide whether the plain encoder may write it."""
    payload: dict[str, Any] = {"name": name, "arguments": arguments}
    if service is not None:
        payload["service"] = service
    if type(name) is str and (service is None or type(service) is str) and _plain(arguments):
        return _encode_plain(payload)
    return dumps(payload)


#: Canonical numbers (what a function result usually is) decoded as bson decodes them: the
#: lone wrapper's string through int()/float(). Anything else goes to bson.
_NUMBERS: Final = {"$numberInt": int, "$numberDouble": float}


def _hook(document: dict[str, Any]) -> Any:
    for key in document:
        if key.startswith("$"):
            if len(document) == 1 and key in _NUMBERS:
                text = document[key]
                if type(text) is str:
                    return _NUMBERS[key](text)
            json_util, _, read = _bson()
            return json_util.object_hook(document, read)
    return document


# Built once: json.dumps/json.loads with any option build a new encoder/decoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(object_hook=_hook)
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed; None without _json
_C_ENCODER = (
    None
    if _MAKE_ENCODER is None
    # What JSONEncoder.encode builds at every call, built once. Without a circular-reference
    # check: only values _plain() walked to the end come here, and a cycle never ends that walk.
    else _MAKE_ENCODER(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
)


def _encode_plain(value: Any) -> str:
    if _C_ENCODER is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))


def loads(text: str | bytes) -> Any:
    """EJSON text (canonical or relaxed) to Python/BSON values. Raises ``ValueError``."""
    # bson's own loads runs its (slow) hook on every object; most objects have no $-keys.
    try:
        string = text.decode() if isinstance(text, bytes) else text
        # The decoder's scanner straight away (what JSONDecoder.decode calls after two regex
        # passes for white space); anything but one value filling the text takes the full
        # path, which skips the white space or raises the exact error.
        try:
            value, end = _SCAN(string, 0)
        except StopIteration:
            end = -1
        if end != len(string):
            value = _DECODER.decode(string)
        return value
    except ValueError:
        raise
    except Exception as exc:  # a bad wrapper: bson raises InvalidId, TypeError, InvalidOperation...
        raise ValueError(f"invalid Extended JSON: {type(exc).__name__}") from None


def loads_plain(text: str | bytes) -> Any:
    """Plain JSON text to Python values. Raises only ``ValueError``: also for nesting deeper
    than the parser's recursion allows (``b"[" * 200000`` raises ``RecursionError`` in ``json``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def decode(value: Any) -> Any:
    """Already-parsed plain JSON (e.g. a JWT claim) to Python/BSON values. Raises ``ValueError``."""
    if isinstance(value, dict | list):
        try:
            text = json.dumps(value)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        return loads(text)
    return value

