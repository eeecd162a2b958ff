"""Property-based fuzzing of the MongoDB service actions over real HTTP: never a 5xx, the server stays up.

Hypothesis generates operator documents (query, update, pipeline and
expression operators, EJSON values, huge and odd numbers, lone surrogates,
``$``/NUL/``system.`` names, nesting past every limit) for find, aggregate,
count, the update/delete/findOneAnd* family and inserts, against one real
``LocalServer`` with a short document time limit. Every answer must be below
500 and every error an App Services error body. Bounded for CI: a fixed number
of examples, no example database.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from _server_testkit import fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appusers.server import LocalServer, load_config
from appusers.server.rules import NamespaceRule, Role

MONGO = "mongodb-atlas"
#: Open access to the seeded namespace, so fuzzed calls reach the store through the rules; every
#: other (fuzzed) namespace falls under the demo rules' owner role.
OPEN_FUZZ = NamespaceRule(database="fuzz", collection="c", roles=(Role(name="all", read=True, write=True),))

QUERY_OPS = [
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or", "$nor", "$not", "$exists",
    "$type", "$regex", "$options", "$elemMatch", "$all", "$size", "$mod", "$expr", "$where", "$text",
    "$jsonSchema", "$comment", "$bitsAllSet",
]  # fmt: skip
EXPR_OPS = [
    "$add", "$subtract", "$multiply", "$divide", "$pow", "$mod", "$log", "$sqrt", "$exp", "$abs", "$ln",
    "$concat", "$substr", "$toUpper", "$regexMatch", "$regexFind", "$range", "$size", "$arrayElemAt",
    "$cond", "$ifNull", "$map", "$filter", "$reduce", "$let", "$literal", "$dateToString", "$toInt",
    "$convert", "$split", "$zip", "$setUnion", "$slice", "$mergeObjects", "$objectToArray", "$sum",
]  # fmt: skip
UPDATE_OPS = [
    "$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$push", "$addToSet", "$pull",
    "$pullAll", "$pop", "$currentDate", "$setOnInsert", "$bit", "$each", "$slice", "$sort", "$position",
]  # fmt: skip
STAGES = [
    "$match", "$project", "$addFields", "$set", "$unset", "$group", "$sort", "$limit", "$skip", "$count",
    "$unwind", "$lookup", "$graphLookup", "$facet", "$bucket", "$replaceRoot", "$sample", "$out", "$merge",
    "$redact", "$sortByCount",
]  # fmt: skip
ACTIONS = [
    "find", "findOne", "count", "aggregate", "insertOne", "insertMany", "updateOne", "updateMany",
    "deleteOne", "deleteMany", "findOneAndUpdate", "findOneAndReplace", "findOneAndDelete",
]  # fmt: skip

odd_text = st.one_of(
    st.sampled_from(
        ["a", "b", "arr", "a.b", "arr.0", "arr.$", "arr.$[]", "arr.$[x]", "_id", "$", "", ".", "a..b"]
    ),
    st.sampled_from(
        ["\ud800", "a\udfff", "\x00", "a\x00b", "$a", "system.users", "$cmd", "é", "😀", "x" * 300]
    ),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, -(2**63), 10**20, 100000]),
    st.floats(allow_nan=False, allow_infinity=False),
)
ejson = st.one_of(
    st.builds(lambda n: {"$numberLong": str(n)}, st.integers(-(2**64), 2**64)),
    st.builds(lambda s: {"$numberDecimal": s}, st.sampled_from(["1.5", "NaN", "-Infinity", "1e6144", "x"])),
    st.builds(lambda s: {"$numberDouble": s}, st.sampled_from(["Infinity", "NaN", "1e400", "oops"])),
    st.builds(
        lambda p, o: {"$regularExpression": {"pattern": p, "options": o}},
        st.sampled_from(["^(a+)+$", "(a)\\1", "(?=x)", "[", "a{1000}{1000}", ".*", "\ud800"]),
        st.sampled_from(["", "i", "imsx", "z", "u"]),
    ),
    st.builds(lambda d: {"$date": {"$numberLong": str(d)}}, st.integers(-(2**63), 2**63)),
    st.just({"$oid": "0123456789abcdef01234567"}),
    st.just({"$oid": "nothex"}),
    st.just({"$binary": {"base64": "AAAA", "subType": "04"}}),
    st.just({"$undefined": True}),
    st.just({"$minKey": 1}),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, odd_text, ejson)
operator_keys = st.one_of(st.sampled_from(QUERY_OPS + EXPR_OPS + UPDATE_OPS + STAGES), odd_text)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(operator_keys, children, max_size=4)
    ),
    max_leaves=20,
)


def _deep(depth: int, kind: str) -> Any:
    value: Any = {"a": 1}
    for _ in range(depth):
        value = {"$and": [value]} if kind == "and" else {"$not": value} if kind == "not" else {"a": value}
    return value


deep = st.builds(_deep, st.integers(min_value=90, max_value=450), st.sampled_from(["and", "not", "doc"]))
long_path = st.builds(lambda n: {"$set": {".".join(["a"] * n): 1}}, st.integers(min_value=1, max_value=6000))
documents = st.one_of(values, deep, st.dictionaries(odd_text, values, max_size=5))
names = st.one_of(st.just("fuzz"), odd_text)


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(st.sampled_from(ACTIONS))
    arg: dict[str, Any] = {
        "database": draw(st.one_of(st.just("fuzz"), st.just("fuzz"), names)),
        "collection": draw(st.one_of(st.just("c"), st.just("c"), names)),
    }
    for key, strategy in (
        ("query", st.one_of(values, deep)),
        ("filter", values),
        ("update", st.one_of(values, long_path, deep)),
        (
            "pipeline",
            st.one_of(st.lists(st.dictionaries(operator_keys, values, max_size=2), max_size=4), values),
        ),
        ("document", documents),
        ("documents", st.one_of(st.lists(documents, max_size=4), values)),
        ("project", values),
        ("projection", values),
        ("sort", values),
        ("limit", st.one_of(numbers, odd_text)),
        ("upsert", st.one_of(st.booleans(), values)),
        ("arrayFilters", values),
        ("returnNewDocument", st.booleans()),
    ):
        if draw(st.booleans()):
            arg[key] = draw(strategy)
    arguments = draw(st.one_of(st.just([arg]), st.just([arg, arg]), values))
    return {"name": action, "service": MONGO, "arguments": arguments}


class _ServerThread:
    """A LocalServer on its own event loop thread, so Hypothesis drives it from plain sync code."""

    def __init__(self, data_dir: Path) -> None:
        config = fast(load_config(None))
        config = attrs.evolve(
            config,
            limits=attrs.evolve(config.limits, document_timeout=2.0),
            rules=(*config.rules, OPEN_FUZZ),
        )
        self._server = LocalServer(config=config, data_dir=data_dir)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._run(self._server.start())
        self.url = f"{self._server.url}/api/client/v2.0/app/{self._server.app_id}"
        status, body = self.post("/auth/providers/anon-user/login", {})
        assert status == 200, body
        self.token = body["access_token"]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode()  # lone surrogates go out as \ud800 escapes
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, raw

    def alive(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/location", timeout=10) as resp:
            return resp.status == 200

    def close(self) -> None:
        self._run(self._server.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ServerThread]:
    server = _ServerThread(tmp_path_factory.mktemp("fuzz") / "data")
    seed = [{"_id": i, "a": i, "b": "x" * i, "arr": list(range(i % 5)), "d": {"e": i}} for i in range(20)]
    status, body = server.post(
        "/functions/call",
        {
            "name": "insertMany",
            "service": MONGO,
            "arguments": [{"database": "fuzz", "collection": "c", "documents": seed}],
        },
        server.token,
    )
    assert status == 200, body
    yield server
    server.close()


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(call=calls())
def test_fuzzed_mongodb_actions_never_5xx(fuzz_server: _ServerThread, call: dict[str, Any]) -> None:
    status, body = fuzz_server.post("/functions/call", call, fuzz_server.token)
    assert status < 500, (call, body)
    if status >= 400:
        assert isinstance(body, dict) and body.get("error_code") and isinstance(body.get("error"), str), body


def test_server_is_alive_after_fuzzing(fuzz_server: _ServerThread) -> None:
    # Runs after the fuzz test in this module (file order): the server still answers and counts.
    assert fuzz_server.alive()
    status, body = fuzz_server.post(
        "/functions/call",
        {
            "name": "count",
            "service": MONGO,
            "arguments": [{"database": "fuzz", "collection": "c", "query": {}}],
        },
        fuzz_server.token,
    )
    assert status == 200, body
