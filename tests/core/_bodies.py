"""Generated malformed response bodies: what a broken proxy, a truncated read or a hostile server
sends where the client expects one of the App Services JSON documents.

Deterministic (a seeded ``random.Random``), so a failure names the body that caused it. Each body
is built from a valid example of the document the step expects, so the mutations reach deep into
the parser's checks instead of being turned away at the first byte.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

__all__ = ["bodies", "jwt_with_payload"]


def jwt_with_payload(payload: bytes) -> str:
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def _evil_tokens(depth: int) -> list[str]:
    return [
        "", "a.b", "a.b.c", "..", "a..c", "x.y.z.w", " a.b.c", "a.b.c\n", "é.é.é",
        jwt_with_payload(b"[" * depth),
        jwt_with_payload(b'{"exp":' + b"[" * depth + b"}"),
        jwt_with_payload(b'{"exp": "1", "iat": 1}'),
        jwt_with_payload(b'{"exp": 1.5, "iat": 1}'),
        jwt_with_payload(b'{"exp": true, "iat": 1}'),
        jwt_with_payload(b'{"exp": 99999999999999999999999999, "iat": 1}'),
        jwt_with_payload(b"[1, 2]"),
        jwt_with_payload(b"\xff\xfe\x00"),
        jwt_with_payload(b'{"exp": 4102444800, "iat": 1, "user_data": ' + b"[" * depth + b"]" * depth + b"}"),
        jwt_with_payload(b'{"exp": 4102444800, "iat": 1, "user_data": {"$oid": "zz"}}'),
        jwt_with_payload(b'{"exp": 4102444800, "iat": 1, "user_data": {"$date": {"$numberLong": "x"}}}'),
        jwt_with_payload(b'{"exp": 4102444800, "iat": 1, "user_data": {"a": "\\ud800"}}'),
    ]


def _evil_values(depth: int, long: int) -> list[Any]:
    deep: Any = []
    for _ in range(min(depth, 900)):
        deep = [deep]
    return [
        None, True, False, 0, -1, 2**70, -(2**63) - 1, 1e308, 0.5, "", " ", "\x00", "\ud800", "\udfff",
        "a" * long, "\u202e\u200b", "0" * 24, "f" * 24, "a b", "a\nb", [], {}, [None],
        {"$oid": "zz"}, {"$numberLong": "x"}, {"$date": "never"}, {"$numberDecimal": "NaN"},
        {"$binary": {"base64": "!!", "subType": "zz"}},
        {"$regularExpression": {"pattern": "(", "options": "q"}},
        deep, {"a": deep}, *_evil_tokens(depth),
    ]


#: Built once: a few sizes of each hostile value.
_EVIL: list[Any] = [*_evil_values(50, 300), *_evil_values(900, 10_000), *_evil_tokens(50_000)]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if len(prefix) >= 6:
        return  # the documents are shallow; a planted deep value need not be walked
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        copy[head] = _replace(value[head], rest, new)
        return copy
    copy_list = list(value)
    copy_list[head] = _replace(value[head], rest, new)
    return copy_list


def _drop(value: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != path[0]}
        return [v for i, v in enumerate(value) if i != path[0]]
    head = path[0]
    if isinstance(value, dict):
        return {**value, head: _drop(value[head], path[1:])}
    copy = list(value)
    copy[head] = _drop(value[head], path[1:])
    return copy


def _dump(value: Any, rng: random.Random) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    except RecursionError:
        text = "[" * 2000
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate with ensure_ascii off: send it escaped
        return json.dumps(value).encode()


def _nesting_bomb(rng: random.Random, valid: Any) -> bytes:
    depth = rng.choice([1_000, 1_000, 3_000, 20_000])
    opener = rng.choice([b"[", b'{"a":', b'{"data":', b'{"identities":'])
    closer = b"]" if opener == b"[" else b"}"
    kind = rng.randrange(4)
    if kind == 0:
        return opener * depth
    if kind == 1:
        return opener * depth + b"1" + closer * depth
    if kind == 2 and isinstance(valid, dict) and valid:
        key = rng.choice(list(valid))
        return json.dumps({**valid, key: None}).replace("null", "[" * depth + "]" * depth, 1).encode()
    return b"[" * rng.choice([1_100, 200_000])  # the second is the body from the issue


def _mutation(rng: random.Random, valid: Any) -> bytes:
    paths = list(_paths(valid))
    path = rng.choice(paths)
    kind = rng.randrange(4)
    if kind == 0 or not path:
        return _dump(_replace(valid, path, rng.choice(_EVIL)), rng)
    if kind == 1:
        return _dump(_drop(valid, path), rng)
    if kind == 2:
        changed = valid
        for _ in range(rng.randint(2, 4)):
            changed = _replace(changed, rng.choice(list(_paths(changed))), rng.choice(_EVIL))
        return _dump(changed, rng)
    return _dump(rng.choice([[valid], "valid", 7, None, [], {}, {"error": 5}, {"error_code": []}]), rng)


def _broken_bytes(rng: random.Random, valid: Any) -> bytes:
    text = json.dumps(valid).encode()
    kind = rng.randrange(9)
    if kind == 0:
        return text[: rng.randrange(len(text))]  # truncated
    if kind == 1:
        return rng.randbytes(rng.randint(1, 300))
    if kind == 2:
        return b"\xef\xbb\xbf" + text  # UTF-8 BOM
    if kind == 3:
        return json.dumps(valid).encode("utf-16")
    if kind == 4:
        return text + rng.choice([b"}", b"]", b" garbage", b"\x00", b"{}"])
    if kind == 5:
        return text.replace(b'"', b"'", rng.randint(1, 4))
    if kind == 6:
        return rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"9" * 5000, b"null", b"true",
                           b'"\\ud800"', b"\xc3\x28", b"\xff\xfe", b" ", b"\n\n", b"{}" * 1000])
    if kind == 7:
        first = next(iter(valid), "k") if isinstance(valid, dict) else "k"
        return text[:-1] + f', "{first}": null}}'.encode() if text.endswith(b"}") else text + b","
    position = rng.randrange(len(text))
    return text[:position] + bytes([rng.randrange(256)]) + text[position + 1:]


def bodies(valid: Any, count: int, *, seed: int) -> list[bytes]:
    """``count`` malformed variants of the document ``valid``, always including ``b"[" * 200000``."""
    rng = random.Random(seed)
    makers = (_nesting_bomb, _mutation, _mutation, _mutation, _broken_bytes, _broken_bytes)
    out = [b"[" * 200_000]
    while len(out) < count:
        out.append(rng.choice(makers)(rng, valid))
    return out
