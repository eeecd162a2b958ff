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
