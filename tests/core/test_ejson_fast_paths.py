"""EJSON's fast paths (the C scanner and encoder used directly) give what json/bson give."""

from __future__ import annotations

import json

import pytest
from bson import Int64, ObjectId

from appusers import _ejson


@pytest.mark.parametrize(
    "text",
    ['{"$numberInt":"3"}', ' {"a": 1} ', '[1, 2]\n', '"x"', "3", "null", '{"a":{"$numberDouble":"1.5"}}'],
)
def test_loads_reads_what_the_full_decoder_reads(text: str) -> None:
    assert _ejson.loads(text) == _ejson._DECODER.decode(text)
    assert _ejson.loads(text.encode()) == _ejson._DECODER.decode(text)


@pytest.mark.parametrize(("text", "message"), [("", "Expecting value"), ("  ", "Expecting value"),
                                                ('{"a": 1} x', "Extra data"), ("[1,", "Expecting value"),
                                                ('{"a" 1}', "Expecting ':' delimiter")])
def test_loads_raises_the_decoders_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _ejson.loads(text)


def test_a_bad_wrapper_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid Extended JSON"):
        _ejson.loads('{"$oid": "not an id"}')


@pytest.mark.parametrize(
    "value",
    [{"name": "sum", "arguments": [1, 2]}, ["é", "\u2028", 'q"uote', 1.5, -(2**31), True, None],
     "text", {}, []],
)
def test_dumps_writes_what_the_json_encoder_writes(value: object) -> None:
    assert _ejson.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_values_that_need_ejson_still_go_through_bson() -> None:
    oid = ObjectId()
    assert json.loads(_ejson.dumps({"id": oid, "n": 2**40, "l": Int64(1)})) == {
        "id": {"$oid": str(oid)}, "n": {"$numberLong": str(2**40)}, "l": {"$numberLong": "1"},
    }


def test_a_cycle_is_refused_not_encoded() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        _ejson.dumps(loop)


class _Text(str):
    pass


@pytest.mark.parametrize(
    ("name", "arguments", "service"),
    [
        ("sum", [1, 2], None),
        ("sum", [], None),
        ("f", [2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**63, -(2**70)], None),
        ("f", [1.5, -0.0, float("nan"), float("inf"), float("-inf"), 1e308], None),
        ("f", [True, False, None, "", "é\u2028\x00", 'q"uote\\'], "mongodb-atlas"),
        ("f", [{"$oid": "x"}, {"a": {"$numberLong": "1"}}], None),
        ("f", [{1: "int key"}, {None: 1}, {"a": [1, {"b": 2**40}]}], None),
        ("f", [(1, 2), [[[]]], {"": {}}], "svc"),
        ("f", [ObjectId("5f0c6f8b9c1d2e3f4a5b6c7d"), Int64(3)], None),
        (_Text("sub"), [_Text("class"), 1], None),
        ("f", [1], _Text("svc")),
        ("f", [1], "$svc"),
        ("$f", ["$x"], None),
    ],
)
def test_dumps_call_writes_what_dumps_writes(name: str, arguments: list[object], service: str | None) -> None:
    payload: dict[str, object] = {"name": name, "arguments": arguments}
    if service is not None:
        payload["service"] = service
    try:
        expected: object = _ejson.dumps(payload)
    except Exception as exc:  # the same error type, whichever path raised it
        expected = type(exc)
    try:
        got: object = _ejson.dumps_call(name, arguments, service)
    except Exception as exc:
        got = type(exc)
    assert got == expected


def test_dumps_call_refuses_a_cycle_as_dumps_does() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        _ejson.dumps_call("f", [loop])
