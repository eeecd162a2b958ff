"""functions/call: user functions, the MongoDB service, and streaming watch over SSE."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
import pytest
from _server_testkit import Api, assert_error, fast, jwt_payload

from appusers.server import LocalServer, ServerConfig, load_config
from appusers.server.rules import NamespaceRule, Role

MONGO = "mongodb-atlas"
NS = {"database": "shop", "collection": "orders"}
#: The MongoDB-service shape tests need open access to their one namespace: an explicit,
#: permissive rule (the demo rules would want an owner_id in every document). Rules
#: themselves are tested in tests/rules and tests/e2e/test_rules.py.
OPEN_ORDERS = NamespaceRule(
    database="shop", collection="orders", roles=(Role(name="readAndWriteAll", read=True, write=True),)
)


@pytest.fixture
def config() -> ServerConfig:
    demo = fast(load_config(None))
    return attrs.evolve(demo, rules=(*demo.rules, OPEN_ORDERS))


@pytest.fixture
async def token(api: Api) -> str:
    return (await api.login("custom-function", username="caller"))["access_token"]


async def test_sum_canonical_and_relaxed(api: Api, token: str) -> None:
    assert await api.call(token, "sum", {"$numberInt": "2"}, {"$numberDouble": "2.5"}) == (
        200,
        {"$numberDouble": "4.5"},
    )
    assert await api.call(token, "sum", 2, 3) == (200, {"$numberInt": "5"})
    assert api.server.stats["function_call"] == 2


async def test_echo_round_trips_bson_types(api: Api, token: str) -> None:
    values = [
        {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"},
        {"$date": {"$numberLong": "1706000000000"}},
        {"$numberDecimal": "1.10"},
        {"$numberLong": "9007199254740993"},
        {"$binary": {"base64": "AAECAw==", "subType": "00"}},
        {"a": [{"$numberInt": "1"}, None, True, "s"]},
    ]
    status, body = await api.call(token, "echo", *values)
    assert status == 200 and body == values
    # relaxed input comes back canonical
    status, body = await api.call(token, "echo", {"$date": "2024-01-31T12:00:00Z"}, 7)
    assert body == [{"$date": {"$numberLong": "1706702400000"}}, {"$numberInt": "7"}]


async def test_whoami_and_custom_data_in_token(api: Api) -> None:
    tokens = await api.login("custom-function", username="cd-user")
    status, me = await api.call(tokens["access_token"], "whoami")
    assert status == 200 and me["id"] == tokens["user_id"] and me["custom_data"] == {}
    status, _ = await api.call(
        tokens["access_token"],
        "set_custom_data",
        {
            "plan": "pro",
            "credits": {"$numberInt": "6"},
            "ratio": 0.5,
            "big": {"$numberLong": "9007199254740993"},
            "since": {"$date": {"$numberLong": "1706000000000"}},
        },
    )
    assert status == 200
    status, _h, body = await api.request("POST", f"{api.auth}/session", token=tokens["refresh_token"])
    user_data = jwt_payload(body["access_token"])["user_data"]
    assert user_data["plan"] == "pro" and user_data["user_id"] == tokens["user_id"]
    assert user_data["since"] == {
        "$date": {"$numberLong": "1706000000000"}
    }  # dates canonical (core needs it)
    # numbers plain: realm-web does not EJSON-decode user_data
    assert user_data["credits"] == 6 and user_data["ratio"] == 0.5 and user_data["big"] == 9007199254740993
    status, me = await api.call(tokens["access_token"], "whoami")
    assert me["custom_data"]["since"] == {"$date": {"$numberLong": "1706000000000"}}


async def test_function_errors(api: Api, token: str) -> None:
    status, body = await api.call(token, "no_such_function")
    assert_error(status, body, 404, "FunctionNotFound")
    status, body = await api.call(token, "sum", "x")
    assert_error(status, body, 400, "FunctionExecutionError", "sum expects numbers")
    status, _h, body = await api.request(
        "POST", f"{api.app}/functions/call", body={"name": "sum", "arguments": []}
    )
    assert_error(status, body, 401, "MissingAuthReq")
    status, body = await api.call(token, "find", NS, service="no-such-service")
    assert_error(status, body, 404, "ServiceNotFound")


async def test_function_returning_error_shaped_document_is_a_failure(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    module = tmp_path / "fns.py"
    module.write_text(
        "import json as _json\n"
        "def oops(context):\n    return {'error': 'bad thing', 'detail': 1}\n"
        "def coded(context):\n    return {'error_code': 'Custom', 'x': 1}\n"
        "def nested(context):\n    return {'result': {'error': 'kept'}}\n"
        "async def nothing(context):\n    return None\n"
        "def weird(context):\n    return object()\n"
        "class NotAFunction:\n    pass\n"
    )
    config = attrs.evolve(fast(load_config(None)), functions_module=module)
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        token = (await api.login())["access_token"]
        status, body = await api.call(token, "oops")
        assert_error(status, body, 400, "FunctionExecutionError", "bad thing")
        status, body = await api.call(token, "coded")
        assert_error(status, body, 400, "FunctionExecutionError", "Custom")
        assert await api.call(token, "nested") == (200, {"result": {"error": "kept"}})
        status, _h, body = await api.request(
            "POST", f"{api.app}/functions/call", token=token, body={"name": "nothing", "arguments": []}
        )
        assert status == 200 and body is None  # JSON null with application/json
        status, body = await api.call(token, "weird")
        assert_error(status, body, 400, "FunctionExecutionError")
        for hidden in ("_json", "json", "NotAFunction"):
            status, body = await api.call(token, hidden)
            assert_error(status, body, 404, "FunctionNotFound")


async def test_null_function_result_has_json_body(api: Api, token: str) -> None:
    status, headers, body = await api.request(
        "POST",
        f"{api.app}/functions/call",
        token=token,
        body={"name": "findOne", "service": MONGO, "arguments": [{**NS, "query": {"nope": 1}}]},
    )
    assert status == 200 and headers["Content-Type"] == "application/json" and body is None


async def test_mongo_crud_shapes(api: Api, token: str) -> None:
    async def m(name: str, **arg: Any) -> Any:
        status, body = await api.call(token, name, {**NS, **arg}, service=MONGO)
        assert status == 200, body
        return body

    one = await m("insertOne", document={"n": 1, "status": "open"})
    assert set(one) == {"insertedId"} and "$oid" in one["insertedId"]
    many = await m(
        "insertMany", documents=[{"n": 2, "status": "open"}, {"_id": "custom", "n": 3, "status": "done"}]
    )
    assert many["insertedIds"][1] == "custom"
    assert await m("count") == {"$numberLong": "3"}
    assert await m("count", query={"status": "open"}, limit={"$numberInt": "1"}) == {"$numberLong": "1"}
    found = await m(
        "find",
        query={"status": "open"},
        project={"n": 1, "_id": 0},
        sort={"n": {"$numberInt": "-1"}},
        limit=10,
    )
    assert found == [{"n": {"$numberInt": "2"}}, {"n": {"$numberInt": "1"}}]
    assert (await m("findOne", query={"n": 3}))["_id"] == "custom"
    upd = await m("updateOne", query={"n": 1}, update={"$set": {"status": "done"}})
    assert upd == {"matchedCount": {"$numberInt": "1"}, "modifiedCount": {"$numberInt": "1"}}
    ups = await m("updateMany", query={"n": 99}, update={"$set": {"status": "new"}}, upsert=True)
    assert ups["matchedCount"] == {"$numberInt": "0"} and "upsertedId" in ups
    before = await m("findOneAndUpdate", filter={"n": 2}, update={"$set": {"status": "x"}})
    assert before["status"] == "open"
    after = await m(
        "findOneAndUpdate", filter={"n": 2}, update={"$set": {"status": "y"}}, returnNewDocument=True
    )
    assert after["status"] == "y"
    replaced = await m(
        "findOneAndReplace", filter={"n": 2}, update={"n": 2, "status": "replaced"}, returnNewDocument=True
    )
    assert replaced["status"] == "replaced"
    # realm-web's findOneAndDelete arrives as findOneAndReplace without `update`
    deleted = await m("findOneAndReplace", filter={"n": 2})
    assert deleted["status"] == "replaced"
    assert await m("findOne", query={"n": 2}) is None
    assert (await m("findOneAndDelete", filter={"n": 3}))["_id"] == "custom"
    agg = await m(
        "aggregate", pipeline=[{"$group": {"_id": "$status", "c": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
    )
    assert {d["_id"] for d in agg} == {"done", "new"}
    assert await m("deleteOne", query={"n": 1}) == {"deletedCount": {"$numberInt": "1"}}
    assert await m("deleteMany", query={}) == {"deletedCount": {"$numberInt": "1"}}


async def test_mongo_argument_errors(api: Api, token: str) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("find", [], "InvalidParameter"),
        ("find", [{"database": "shop"}], "InvalidParameter"),
        ("find", [{**NS, "query": "notadoc"}], "InvalidParameter"),
        ("find", [{**NS, "limit": -1}], "InvalidParameter"),
        ("insertOne", [NS], "MissingParameter"),
        ("insertMany", [{**NS, "documents": []}], "InvalidParameter"),
        ("updateOne", [{**NS, "query": {}}], "MissingParameter"),
        ("aggregate", [{**NS, "pipeline": [1]}], "InvalidParameter"),
        ("findOneAndUpdate", [{**NS, "filter": {}}], "MissingParameter"),
        ("explode", [NS], "ServiceCommandNotFound"),
    ]
    for name, args, code in cases:
        status, _h, body = await api.request(
            "POST",
            f"{api.app}/functions/call",
            token=token,
            body={"name": name, "service": MONGO, "arguments": args},
        )
        assert 400 <= status < 500 and body["error_code"] == code, (name, body)
    status, body = await api.call(
        token, "updateOne", {**NS, "query": {}, "update": {"$bogus": {"a": 1}}}, service=MONGO
    )
    assert_error(status, body, 400, "MongoDBError")
    assert (await api.call(token, "insertOne", {**NS, "document": {"_id": 1}}, service=MONGO))[0] == 200
    status, body = await api.call(token, "insertOne", {**NS, "document": {"_id": 1}}, service=MONGO)
    assert_error(status, body, 400, "MongoDBError", "duplicate key")
    status, body = await api.call(token, "find", {**NS, "query": {"$bogus": 1}}, service=MONGO)
    assert_error(status, body, 400, "MongoDBError")  # a non-empty collection evaluates the query


async def test_mongo_service_aliases(api: Api, token: str) -> None:
    status, _ = await api.call(token, "insertOne", {**NS, "document": {"a": 1}}, service="mongo-db")
    assert status == 200
    status, body = await api.call(token, "count", NS, service=MONGO)
    assert body == {"$numberLong": "1"}


def _baas_request(call: dict[str, Any]) -> str:
    return quote(base64.b64encode(json.dumps(call).encode()).decode(), safe="")


async def _read_events(resp: aiohttp.ClientResponse, count: int) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    kind, data = "", []
    while len(events) < count:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\r\n")
        if line.startswith(":"):
            continue
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            events.append((kind, "\n".join(data)))
            kind, data = "", []
    return events


@pytest.mark.parametrize("token_in", ["header", "query"])
async def test_watch_stream(api: Api, token: str, token_in: str) -> None:
    call = {"name": "watch", "service": MONGO, "arguments": [NS]}
    url = f"{api.app}/functions/call?baas_request={_baas_request(call)}"
    headers = {"Accept": "text/event-stream"}
    if token_in == "header":
        headers["Authorization"] = f"Bearer {token}"
    else:
        url += f"&baas_at={token}"
    async with api.http.get(url, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        await asyncio.sleep(0)  # the watch is registered before the first byte is sent
        status, _ = await api.call(
            token, "insertOne", {**NS, "document": {"text": "100% done\nnext\r"}}, service=MONGO
        )
        assert status == 200
        [(kind, data)] = await _read_events(resp, 1)
    assert kind == "message"
    # JSON already escapes LF/CR as \n/\r; the raw '%' must arrive as %25
    assert "\n" not in data and "\r" not in data and "100%25 done" in data
    event = json.loads(data.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%"))
    assert event["operationType"] == "insert"
    assert event["fullDocument"]["text"] == "100% done\nnext\r"
    assert api.server.stats["stream"] == 1


async def test_watch_errors(api: Api, token: str) -> None:
    base = f"{api.app}/functions/call"
    good = _baas_request({"name": "watch", "service": MONGO, "arguments": [NS]})
    cases = [
        (f"{base}?baas_request={good}", None, 401, "MissingAuthReq"),
        (f"{base}?baas_request={good}&baas_at=garbage", None, 401, "InvalidSession"),
        (f"{base}?baas_request=%%%%", token, 400, "InvalidParameter"),
        (f"{base}?baas_request=bm90IGpzb24%3D", token, 400, "InvalidParameter"),  # "not json"
        (f"{base}", token, 400, "MissingParameter"),
        (
            f"{base}?baas_request={_baas_request({'name': 'sum', 'arguments': []})}",
            token,
            400,
            "InvalidParameter",
        ),
        (
            f"{base}?baas_request={_baas_request({'name': 'watch', 'service': 'x', 'arguments': [NS]})}",
            token,
            404,
            "ServiceNotFound",
        ),
    ]
    for url, tok, want, code in cases:
        status, _h, body = await api.request("GET", url, token=tok)
        assert_error(status, body, want, code)


async def test_close_ends_open_streams(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    srv = LocalServer(config=fast(load_config(None)), data_dir=tmp_path / "d")
    await srv.start()
    try:
        api = Api(srv, http)
        token = (await api.login())["access_token"]
        call = {"name": "watch", "service": MONGO, "arguments": [NS]}
        url = f"{api.app}/functions/call?baas_request={_baas_request(call)}&baas_at={token}"
        async with http.get(url) as resp:
            assert resp.status == 200
            assert (await resp.content.readline()).startswith(b":")
            await asyncio.wait_for(srv.close(), 10)
            try:
                rest = await asyncio.wait_for(resp.content.read(), 10)
            except aiohttp.ClientPayloadError:
                rest = b""
            assert b"event:" not in rest
    finally:
        await srv.close()


async def test_function_context(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    module = tmp_path / "ctx.py"
    module.write_text(
        "async def outer(context, x):\n"
        "    inner = await context.functions.execute('inner', x)\n"
        "    coll = context.services.get('mongodb-atlas').db('app').collection('log')\n"
        "    await coll.insert_one({'owner_id': context.user.id, 'x': x})\n"
        "    n = await coll.count({})\n"
        "    return {'inner': inner, 'app': context.app_id, 'count': n}\n"
        "def inner(context, x):\n"
        "    return x * 2\n"
        "def bad_service(context):\n"
        "    return context.services.get('nope')\n"
    )
    config = attrs.evolve(fast(load_config(None)), functions_module=module)
    config = attrs.evolve(config, custom_data=attrs.evolve(config.custom_data, enabled=False))
    async with LocalServer(config=config, data_dir=tmp_path / "d") as srv:
        api = Api(srv, http)
        tokens = await api.login()
        assert "user_data" not in jwt_payload(tokens["access_token"])  # custom data off
        status, body = await api.call(tokens["access_token"], "outer", 21)
        assert status == 200
        assert body == {"inner": {"$numberInt": "42"}, "app": "appusers-local", "count": {"$numberInt": "1"}}
        status, body = await api.call(tokens["access_token"], "bad_service")
        assert_error(status, body, 400, "FunctionExecutionError", "no service named 'nope'")


def test_request_info_hides_secret_headers_past_the_remembered_names(monkeypatch: Any) -> None:
    """Header names are classified once and remembered up to a bound; hostile floods of
    distinct names neither grow it past the bound nor let a secret header through."""
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from appusers.server import _functions

    monkeypatch.setattr(_functions, "_SECRET_SEEN", {})
    flood = CIMultiDict((f"X-Junk-{i}", "v") for i in range(_functions._SECRET_SEEN_ENTRIES + 10))
    _functions.request_info(make_mocked_request("POST", "/", headers=flood))
    assert len(_functions._SECRET_SEEN) == _functions._SECRET_SEEN_ENTRIES
    headers = CIMultiDict(
        [
            ("X-Trace", "a"),
            ("AUTHORIZATION", "Bearer secret-1"),
            ("X-Session-Token", "secret-2"),
            ("x-trace", "b"),
            ("Cookie", "secret-3"),
            ("X-Repeated", "1"),
            ("X-Repeated", "2"),
        ]
    )
    for _ in range(2):  # classified, then remembered (or not, past the bound): same answer
        info = _functions.request_info(make_mocked_request("POST", "/?a=1&token=secret-4", headers=headers))
        assert info.headers == {"X-Trace": ("a",), "x-trace": ("b",), "X-Repeated": ("1", "2")}
        assert "secret" not in repr(info)
        assert info.raw_query_string == "a=1"
