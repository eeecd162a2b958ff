"""A watch whose rules fail to evaluate: a typed 4xx when it opens, an SSE error event while it runs.

Rules that parse can still fail when they run: a filter ``query`` is not checked
for expansions when it is parsed, a rule built in Python (``Role(...)``) is not
checked at all, a ``%function`` can raise and two filters can ask for opposite
projections. Whatever the rule does, the caller gets an App Services error
(never a 5xx), the stream ends cleanly with an ``error`` event, the server logs
one line without a traceback, and the watch slot is freed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import pytest
from _server_testkit import Api, assert_error, fast

from appusers.server import ServerConfig, load_config
from appusers.server.rules import NamespaceRule, QueryFilter, Role

MONGO = "mongodb-atlas"
DB = "shop"
NS_FILTER = {"database": DB, "collection": "bad_filter"}
NS_ROLE = {"database": DB, "collection": "bad_role"}
NS_FUNCTION = {"database": DB, "collection": "failing_function"}
NS_PROJECTION = {"database": DB, "collection": "conflicting_filters"}
NS_OTHER = {"database": DB, "collection": "other"}  # the demo rules' owner role

FUNCTIONS = """
def boom(context, *args):
    raise RuntimeError("the rule function broke")
"""

READ_ALL = Role(name="readAll", read=True, write=True)
RULES = (
    # Rules built in Python are not checked (the parser refuses this filter): only evaluation
    # meets the unknown expansion.
    NamespaceRule(
        database=DB,
        collection="bad_filter",
        roles=(READ_ALL,),
        filters=(QueryFilter(name="mine", query={"owner_id": "%%nosuch.id"}),),
    ),
    # A role built in Python is not checked: it fails for documents of kind "bad" only
    # (the keys of an expression are evaluated in order and stop at the first false one).
    NamespaceRule(
        database=DB,
        collection="bad_role",
        roles=(Role(name="broken", apply_when={"kind": "bad", "%%nosuch": 1}), READ_ALL),
    ),
    NamespaceRule(
        database=DB,
        collection="failing_function",
        roles=(Role(name="checked", apply_when={"kind": "bad", "%function": {"name": "boom"}}), READ_ALL),
    ),
    NamespaceRule(
        database=DB,
        collection="conflicting_filters",
        roles=(READ_ALL,),
        filters=(
            QueryFilter(name="hide", projection={"secret": 0}),
            QueryFilter(name="show", projection={"secret": 1}),
        ),
    ),
)


@pytest.fixture
def config(tmp_path: Path) -> ServerConfig:
    module = tmp_path / "rule_functions.py"
    module.write_text(FUNCTIONS)
    demo = fast(load_config(None))
    return attrs.evolve(demo, functions_module=module, rules=(*demo.rules, *RULES))


@pytest.fixture
async def token(api: Api) -> str:
    return str((await api.login())["access_token"])


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def _url(api: Api, ns: dict[str, str], token: str) -> str:
    call = {"name": "watch", "service": MONGO, "arguments": [ns]}
    request = quote(base64.b64encode(json.dumps(call).encode()).decode(), safe="")
    return f"{api.app}/functions/call?baas_request={request}&baas_at={token}"


def _events(raw: bytes) -> list[tuple[str, Any]]:
    """The events of a finished stream, in order (comments skipped)."""
    out: list[tuple[str, Any]] = []
    for block in raw.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        kind = next((line[6:].strip() for line in lines if line.startswith("event:")), "message")
        data = "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
        out.append((kind, json.loads(data.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%"))))
    return out


async def _stream_after_inserts(api: Api, token: str, ns: dict[str, str], *docs: dict[str, Any]) -> bytes:
    """Open a watch on ``ns``, insert ``docs`` and read the stream until the server ends it."""
    async with api.http.get(_url(api, ns, token)) as resp:
        assert resp.status == 200
        assert (await resp.content.readline()).startswith(b":")  # the watch is registered
        # Straight into the store (as a trigger or a system function would): the rules
        # would refuse a user's insert of the documents they cannot evaluate.
        store = api.server._server_app.documents.collection(ns["database"], ns["collection"])
        for doc in docs:
            await store.insert_one(doc)
        return await asyncio.wait_for(resp.content.read(), 10)


def _assert_clean_log(log: pytest.LogCaptureFixture, *, ended: bool) -> None:
    assert not [r for r in log.records if r.exc_info or r.levelno >= logging.ERROR], log.text
    lines = [r for r in log.records if r.getMessage().startswith("watch stream ended")]
    assert len(lines) == (1 if ended else 0), log.text
    assert all(r.levelno == logging.WARNING for r in lines)


async def _assert_server_alive(api: Api, token: str) -> None:
    assert await api.call(token, "count", NS_OTHER, service=MONGO) == (200, {"$numberLong": "0"})
    assert api.server._server_app.streams == set()


async def test_a_filter_that_cannot_be_evaluated_refuses_the_watch_with_a_400(
    api: Api, token: str, log: pytest.LogCaptureFixture
) -> None:
    status, _h, body = await api.request("GET", _url(api, NS_FILTER, token))
    assert_error(status, body, 400, "FunctionExecutionError", "rule evaluation failed: unknown expansion")
    # The same rule on an ordinary call answers the same.
    status, body = await api.call(token, "find", NS_FILTER, service=MONGO)
    assert_error(status, body, 400, "FunctionExecutionError", "rule evaluation failed: unknown expansion")
    _assert_clean_log(log, ended=False)


async def test_conflicting_filter_projections_refuse_the_watch_with_a_400(
    api: Api, token: str, log: pytest.LogCaptureFixture
) -> None:
    status, _h, body = await api.request("GET", _url(api, NS_PROJECTION, token))
    assert_error(status, body, 400, "InvalidParameter", "filter projections conflict on 'secret'")
    _assert_clean_log(log, ended=False)


async def test_a_role_that_fails_for_one_event_ends_the_stream_with_an_error_event(
    api: Api, token: str, log: pytest.LogCaptureFixture
) -> None:
    raw = await _stream_after_inserts(api, token, NS_ROLE, {"kind": "good"}, {"kind": "bad"})
    [(first, event), (second, error)] = _events(raw)
    assert first == "message" and event["fullDocument"]["kind"] == "good"
    assert second == "error"
    assert error == {
        "error_code": "FunctionExecutionError",
        "error": "rule evaluation failed: unknown expansion '%%nosuch'",
    }
    _assert_clean_log(log, ended=True)
    await _assert_server_alive(api, token)


async def test_a_failing_rule_function_ends_the_stream_with_an_error_event(
    api: Api, token: str, log: pytest.LogCaptureFixture
) -> None:
    raw = await _stream_after_inserts(api, token, NS_FUNCTION, {"kind": "good"}, {"kind": "bad"})
    [(first, event), (second, error)] = _events(raw)
    assert first == "message" and event["fullDocument"]["kind"] == "good"
    assert second == "error"
    assert error == {"error_code": "FunctionExecutionError", "error": "the rule function broke"}
    _assert_clean_log(log, ended=True)
    # The function's own message goes to the caller, not to the log.
    assert "the rule function broke" not in log.text
    await _assert_server_alive(api, token)
