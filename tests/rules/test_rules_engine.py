"""The rules engine on its own: App Services' documented expression examples, every operator,
every branch of the read and write flowcharts, filters, namespaces and app-user restrictions."""

from __future__ import annotations

from typing import Any

import pytest
from bson.objectid import ObjectId

from appusers.server.rules import (
    DefaultRule,
    DocumentFilters,
    ExpressionEnv,
    FieldRule,
    NamespaceRule,
    QueryFilter,
    Role,
    RuleEvaluationError,
    Scope,
    evaluate,
)
from appusers.server.rules._policy import (
    REFUSED_QUERY_OPERATORS,
    REFUSED_STAGES,
    NamespaceRules,
    Policy,
    RuleBook,
    RuleDenied,
    check_pipeline,
    check_query,
)

OID = ObjectId()
ALICE = {
    "id": str(OID),
    "type": "normal",
    "data": {"email": "alice@example.com"},
    "custom_data": {"role": "editor", "teams": ["red", "blue"]},
    "identities": [{"id": "i1", "provider_type": "local-userpass"}],
}
BOB = {"id": "b" * 24, "type": "normal", "data": {}, "custom_data": {}, "identities": []}


async def _authorized(name: str, args: list[Any]) -> Any:
    assert name == "isAuthorizedUser"
    return args == [ALICE["id"]]


def env(user: dict[str, Any] = ALICE, **kw: Any) -> ExpressionEnv:
    base: dict[str, Any] = {
        "values": {"admin_ids": [ALICE["id"]], "allowedClientIPAddresses": ["10.0.0.1"]},
        "environment": {"tag": "production", "values": {"baseUrl": "https://x"}},
        "request": {"remoteIPAddress": "10.0.0.1"},
        "function": _authorized,
    }
    base.update(kw)
    return ExpressionEnv(user=user, **base)


# (expression, env kwargs, scope, expected) -- examples 1-10 are App Services' documented ones.
CASES: list[tuple[str, Any, dict[str, Any], Scope, bool]] = [
    ("ex1 owner", {"owner_id": "%%user.id"}, {}, Scope(root={"owner_id": ALICE["id"]}), True),
    (
        "ex1 other owner",
        {"owner_id": "%%user.id"},
        {"user": BOB},
        Scope(root={"owner_id": ALICE["id"]}),
        False,
    ),
    ("ex1 no owner field", {"owner_id": "%%user.id"}, {}, Scope(root={}), False),
    ("ex2 email exists", {"%%user.data.email": {"%exists": True}}, {}, Scope(), True),
    ("ex2 no email", {"%%user.data.email": {"%exists": True}}, {"user": BOB}, Scope(), False),
    (
        "ex3 root email",
        {"%%root.email": "%%user.data.email"},
        {},
        Scope(root={"email": "alice@example.com"}),
        True,
    ),
    ("ex3 other email", {"%%root.email": "%%user.data.email"}, {}, Scope(root={"email": "x@y"}), False),
    ("ex4 admin", {"%%user.id": {"$in": "%%values.admin_ids"}}, {}, Scope(), True),
    ("ex4 not admin", {"%%user.id": {"$in": "%%values.admin_ids"}}, {"user": BOB}, Scope(), False),
    (
        "ex5 owner from allowed ip",
        {"owner": "%%user.id", "%%request.remoteIPAddress": {"$in": "%%values.allowedClientIPAddresses"}},
        {},
        Scope(root={"owner": ALICE["id"]}),
        True,
    ),
    (
        "ex5 owner from other ip",
        {"owner": "%%user.id", "%%request.remoteIPAddress": {"$in": "%%values.allowedClientIPAddresses"}},
        {"request": {"remoteIPAddress": "10.9.9.9"}},
        Scope(root={"owner": ALICE["id"]}),
        False,
    ),
    (
        "ex6 production",
        {"%%environment.tag": "production", "%%environment.values.baseUrl": {"%exists": True}},
        {},
        Scope(),
        True,
    ),
    (
        "ex6 development",
        {"%%environment.tag": "production", "%%environment.values.baseUrl": {"%exists": True}},
        {"environment": {"tag": "development", "values": {}}},
        Scope(),
        False,
    ),
    (
        "ex7 function true",
        {"%%true": {"%function": {"name": "isAuthorizedUser", "arguments": ["%%user.id"]}}},
        {},
        Scope(),
        True,
    ),
    (
        "ex7 function false",
        {"%%true": {"%function": {"name": "isAuthorizedUser", "arguments": ["%%user.id"]}}},
        {"user": BOB},
        Scope(),
        False,
    ),
    (
        "ex8 in range",
        {"%%args.someNumber": {"%and": [{"$gt": 0}, {"$lte": 42}]}},
        {"args": {"someNumber": 42}},
        Scope(),
        True,
    ),
    (
        "ex8 above",
        {"%%args.someNumber": {"%and": [{"$gt": 0}, {"$lte": 42}]}},
        {"args": {"someNumber": 43}},
        Scope(),
        False,
    ),
    (
        "ex8 zero",
        {"%%args.someNumber": {"%and": [{"$gt": 0}, {"$lte": 42}]}},
        {"args": {"someNumber": 0}},
        Scope(),
        False,
    ),
    (
        "ex9 update",
        {"%or": [{"%%prevRoot": {"%exists": True}}, {"%%root.status": "new"}]},
        {},
        Scope(root={"status": "old"}, prev_root={"status": "old"}),
        True,
    ),
    (
        "ex9 insert new",
        {"%or": [{"%%prevRoot": {"%exists": True}}, {"%%root.status": "new"}]},
        {},
        Scope(root={"status": "new"}),
        True,
    ),
    (
        "ex9 insert other",
        {"%or": [{"%%prevRoot": {"%exists": True}}, {"%%root.status": "new"}]},
        {},
        Scope(root={"status": "draft"}),
        False,
    ),
    ("ex10 oid", {"_id": {"%stringToOid": "%%user.id"}}, {}, Scope(root={"_id": OID}), True),
    ("ex10 other oid", {"_id": {"%stringToOid": "%%user.id"}}, {}, Scope(root={"_id": ObjectId()}), False),
    (
        "ex10 bad hex never matches",
        {"_id": {"%stringToOid": "%%user.id"}},
        {"user": {"id": "nothex"}},
        Scope(root={"_id": OID}),
        False,
    ),
    # -- one per operator
    ("empty is true", {}, {}, Scope(), True),
    ("%%true key", {"%%true": True}, {}, Scope(), True),
    ("%%false key", {"%%false": True}, {}, Scope(), False),
    ("%%false value", {"%%root.flag": "%%false"}, {}, Scope(root={"flag": False}), True),
    ("%exists false on missing", {"%%prevRoot": {"%exists": False}}, {}, Scope(root={}), True),
    ("$exists", {"a": {"$exists": True}}, {}, Scope(root={"a": None}), True),
    ("%in", {"%%user.custom_data.role": {"%in": ["editor", "admin"]}}, {}, Scope(), True),
    ("%in miss", {"%%user.custom_data.role": {"%in": ["admin"]}}, {}, Scope(), False),
    ("%nin", {"%%user.custom_data.role": {"%nin": ["admin"]}}, {}, Scope(), True),
    ("$nin miss", {"%%user.custom_data.role": {"$nin": ["editor"]}}, {}, Scope(), False),
    ("%in not a list", {"%%user.id": {"%in": "%%values.nothing"}}, {}, Scope(), False),
    ("$eq", {"n": {"$eq": 3}}, {}, Scope(root={"n": 3}), True),
    ("$ne", {"n": {"$ne": 3}}, {}, Scope(root={"n": 4}), True),
    ("$ne same", {"n": {"$ne": 3}}, {}, Scope(root={"n": 3}), False),
    ("$gt", {"n": {"$gt": 3}}, {}, Scope(root={"n": 4}), True),
    ("$gte", {"n": {"$gte": 3}}, {}, Scope(root={"n": 3}), True),
    ("$lt", {"n": {"$lt": 3}}, {}, Scope(root={"n": 3}), False),
    ("$lte", {"n": {"$lte": 3}}, {}, Scope(root={"n": 3}), True),
    ("$gt across types is false", {"n": {"$gt": 3}}, {}, Scope(root={"n": "9"}), False),
    ("bool is not a number", {"n": 1}, {}, Scope(root={"n": True}), False),
    ("%and", {"%and": [{"a": 1}, {"b": 2}]}, {}, Scope(root={"a": 1, "b": 2}), True),
    ("%or", {"%or": [{"a": 2}, {"b": 2}]}, {}, Scope(root={"a": 1, "b": 2}), True),
    ("%or none", {"%or": [{"a": 2}, {"b": 3}]}, {}, Scope(root={"a": 1, "b": 2}), False),
    ("%not", {"%not": {"a": 1}}, {}, Scope(root={"a": 2}), True),
    ("%not in a test", {"a": {"%not": {"$in": [1, 2]}}}, {}, Scope(root={"a": 3}), True),
    ("array contains", {"members": "%%user.id"}, {}, Scope(root={"members": ["x", ALICE["id"]]}), True),
    ("array lacks", {"members": "%%user.id"}, {}, Scope(root={"members": ["x"]}), False),
    ("array equal", {"tags": ["a", "b"]}, {}, Scope(root={"tags": ["a", "b"]}), True),
    ("dotted plain key", {"meta.owner": "%%user.id"}, {}, Scope(root={"meta": {"owner": ALICE["id"]}}), True),
    ("%oidToString", {"%%user.id": {"%oidToString": "%%root._id"}}, {}, Scope(root={"_id": OID}), True),
    ("%%user.type", {"%%user.type": "normal"}, {}, Scope(), True),
    ("%%user.custom_data array", {"%%user.custom_data.teams": "red"}, {}, Scope(), True),
    ("%%user.identities", {"%%user.identities.0": {"%exists": True}}, {}, Scope(), False),
    ("%%this/%%prev", {"%%this": {"$gt": "%%prev"}}, {}, Scope(this=5, prev=4), True),
    ("missing never equals missing", {"%%root.a": "%%root.b"}, {}, Scope(root={}), False),
]


@pytest.mark.parametrize(("name", "expr", "kw", "scope", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_expression(name: str, expr: Any, kw: dict[str, Any], scope: Scope, expected: bool) -> None:
    assert await evaluate(expr, env(**kw), scope) is expected


async def test_function_without_hook_is_an_error() -> None:
    with pytest.raises(RuleEvaluationError):
        await evaluate({"%%true": {"%function": {"name": "f"}}}, env(function=None))


# -------------------------------------------------------------------------------- read flowchart

DOC = {"_id": 1, "owner_id": ALICE["id"], "title": "t", "notes": "secret", "meta": {"a": 1, "b": 2}}


def policy(*roles: Role, filters: tuple[QueryFilter, ...] = (), user: dict[str, Any] = ALICE) -> Policy:
    return Policy(NamespaceRules(tuple(roles), filters), env(user))


READS: list[tuple[str, Role, Any]] = [
    ("no role applies", Role(name="r", apply_when={"owner_id": "nobody"}, read=True), None),
    ("read true", Role(name="r", read=True), DOC),
    ("write implies read", Role(name="r", read=False, write=True), DOC),
    ("read false", Role(name="r", read=False), None),
    ("read undefined, write true", Role(name="r", write=True), DOC),
    (
        "document_filters deny",
        Role(name="r", document_filters=DocumentFilters(read=False, write=False), read=True),
        None,
    ),
    (
        "document_filters write suffices",
        Role(name="r", document_filters=DocumentFilters(read=False, write=True), read=True),
        DOC,
    ),
    ("no field rules: nothing readable", Role(name="r"), None),
    (
        "field-level",
        Role(name="r", fields={"title": FieldRule(read=True), "notes": FieldRule(read=False)}),
        {"_id": 1, "title": "t"},
    ),
    (
        "field write implies read",
        Role(name="r", fields={"notes": FieldRule(write=True)}),
        {"_id": 1, "notes": "secret"},
    ),
    (
        "additional_fields",
        Role(name="r", fields={"notes": FieldRule(read=False)}, additional_fields=FieldRule(read=True)),
        {k: v for k, v in DOC.items() if k != "notes"},
    ),
    (
        "nested fields",
        Role(name="r", fields={"meta": FieldRule(fields={"a": FieldRule(read=True)})}),
        {"_id": 1, "meta": {"a": 1}},
    ),
    (
        "embedded rule overrides sub-fields",
        Role(
            name="r",
            fields={"meta": FieldRule(read=False, fields={"a": FieldRule(read=True)})},
            additional_fields=FieldRule(read=True),
        ),
        {k: v for k, v in DOC.items() if k != "meta"},
    ),
    (
        "field read by %%this",
        Role(name="r", fields={"title": FieldRule(read={"%%this": "t"})}),
        {"_id": 1, "title": "t"},
    ),
]


@pytest.mark.parametrize(("name", "role", "expected"), READS, ids=[r[0] for r in READS])
async def test_read_flowchart(name: str, role: Role, expected: Any) -> None:
    assert await policy(role).readable(DOC) == expected


async def test_first_applying_role_wins_per_document() -> None:
    p = policy(
        Role(name="owner", apply_when={"owner_id": "%%user.id"}, read=True, write=True),
        Role(name="others", apply_when={}, fields={"title": FieldRule(read=True)}),
    )
    assert await p.readable(DOC) == DOC
    other = {**DOC, "owner_id": "someone"}
    assert await p.readable(other) == {"_id": 1, "title": "t"}


async def test_search_needs_search() -> None:
    assert await policy(Role(name="r", read=True, search=False)).readable(DOC, search=True) is None
    assert await policy(Role(name="r", read=True)).readable(DOC, search=True) == DOC


# ------------------------------------------------------------------------------- write flowchart

OWNER = Role(name="owner", apply_when={"owner_id": "%%user.id"}, read=True, write=True)


async def _denied(coro: Any) -> str:
    with pytest.raises(RuleDenied) as info:
        await coro
    assert info.value.code == "NoMatchingRuleFound"
    return info.value.message


async def test_insert_needs_role_write_and_insert() -> None:
    await policy(OWNER).check_insert({"_id": 1, "owner_id": ALICE["id"]})
    assert (
        await _denied(policy(OWNER).check_insert({"_id": 1, "owner_id": BOB["id"]})) == "insert not permitted"
    )
    no_insert = Role(name="r", write=True, insert=False)
    await _denied(policy(no_insert).check_insert({"_id": 1}))
    await _denied(policy(Role(name="r", write=False)).check_insert({"_id": 1}))


async def test_insert_only_pattern() -> None:
    role = Role(name="r", read=True, insert=True, delete=False, write={"%%prevRoot": {"%exists": False}})
    await policy(role).check_insert({"_id": 1, "x": 1})
    assert (
        await _denied(policy(role).check_update({"_id": 1, "x": 1}, {"_id": 1, "x": 2}))
        == "update not permitted"
    )
    assert await _denied(policy(role).check_delete({"_id": 1, "x": 1})) == "delete not permitted"


async def test_update_checks_the_role_before_and_after() -> None:
    mine = {"_id": 1, "owner_id": ALICE["id"], "n": 1}
    theirs = {"_id": 1, "owner_id": BOB["id"], "n": 1}
    await policy(OWNER).check_update(mine, {**mine, "n": 2})
    # %%root move into my permission: the pre-image is someone else's.
    await _denied(policy(OWNER).check_update(theirs, {**theirs, "owner_id": ALICE["id"]}))
    # ... and out of it: the post-image would no longer be mine.
    await _denied(policy(OWNER).check_update(mine, {**mine, "owner_id": BOB["id"]}))


async def test_document_filters_write_and_delete_flags() -> None:
    doc = {"_id": 1}
    gated = Role(name="r", document_filters=DocumentFilters(read=True, write=False), read=True, write=True)
    await _denied(policy(gated).check_update(doc, {"_id": 1, "x": 1}))
    await _denied(policy(Role(name="r", write=True, delete=False)).check_delete(doc))
    await policy(Role(name="r", write=True)).check_delete(doc)


async def test_field_level_writes() -> None:
    role = Role(
        name="r",
        fields={
            "title": FieldRule(write=True),
            "role": FieldRule(read=True, write=False),
            "meta": FieldRule(fields={"a": FieldRule(write=True)}),
            "n": FieldRule(write={"%%this": {"$gt": "%%prev"}}),
        },
    )
    pre = {"_id": 1, "title": "t", "role": "user", "meta": {"a": 1, "b": 1}, "n": 1}
    p = policy(role)
    await p.check_update(pre, {**pre, "title": "u"})
    await p.check_update(pre, {**pre, "meta": {"a": 2, "b": 1}})
    await p.check_update(pre, {**pre, "n": 2})
    await _denied(p.check_update(pre, {**pre, "n": 0}))
    await _denied(p.check_update(pre, {**pre, "role": "admin"}))
    await _denied(p.check_update(pre, {**pre, "meta": {"a": 1, "b": 2}}))
    await _denied(p.check_update(pre, {**pre, "unlisted": 1}))
    additional = Role(
        name="r", fields={"role": FieldRule(write=False)}, additional_fields=FieldRule(write=True)
    )
    await policy(additional).check_update(pre, {**pre, "unlisted": 1})
    await _denied(policy(additional).check_update(pre, {**pre, "role": "admin"}))
    # delete writes every field
    await _denied(policy(additional).check_delete(pre))


# --------------------------------------------------------------------------------------- filters


async def test_filters_merge_queries_and_projections() -> None:
    filters = (
        QueryFilter(name="mine", apply_when={"%%true": True}, query={"owner_id": "%%user.id"}),
        QueryFilter(name="hide", apply_when={}, projection={"notes": 0}),
        QueryFilter(name="never", apply_when={"%%user.type": "server"}, query={"x": 1}),
        QueryFilter(name="team", apply_when={}, query={"team": "%%user.custom_data.team"}),
    )
    queries, projection = await policy(OWNER, filters=filters).filters()
    assert queries == [{"owner_id": ALICE["id"]}, {"_id": {"$in": []}}]
    assert projection == {"notes": 0}
    clash = (QueryFilter(name="a", projection={"x": 1}), QueryFilter(name="b", projection={"y": 0}))
    with pytest.raises(RuleDenied):
        await policy(OWNER, filters=clash).filters()


# ------------------------------------------------------------------------------------ namespaces


def test_rulebook_lookup() -> None:
    own = NamespaceRule(database="d", collection="own", roles=(OWNER,))
    filters_only = NamespaceRule(database="d", collection="f", filters=(QueryFilter(name="q"),))
    atlas = NamespaceRule(database="d", collection="svc", roles=(Role(name="x"),), service="mongodb-atlas")
    book = RuleBook(
        rules=(own, filters_only, atlas), default_rules=(DefaultRule(roles=(Role(name="default"),)),)
    )
    assert book.lookup("mongo-db", "d", "own").roles == (OWNER,)
    assert book.lookup("mongo-db", "d", "other").roles[0].name == "default"
    # Filters of its own, roles from the default rule.
    found = book.lookup("mongo-db", "d", "f")
    assert found.roles[0].name == "default" and found.filters[0].name == "q"
    assert book.lookup("mongodb-atlas", "d", "svc").roles[0].name == "x"
    assert book.lookup("mongo-db", "d", "svc").roles[0].name == "default"
    with pytest.raises(RuleDenied) as info:
        RuleBook(rules=(own,)).lookup("mongo-db", "d", "nope")
    assert (info.value.code, info.value.message) == (
        "NoMatchingRuleFound",
        "no rule exists for namespace 'd.nope'",
    )
    with pytest.raises(RuleDenied):
        book.lookup("mongo-db", "admin", "own")
    # A namespace with its own (failing) roles never falls back to the default rule.
    strict = NamespaceRule(
        database="d", collection="own", roles=(Role(name="none", apply_when={"%%false": True}),)
    )
    assert (
        RuleBook(rules=(strict,), default_rules=book.default_rules).lookup("s", "d", "own").roles
        == strict.roles
    )


# ---------------------------------------------------------------------------- app-user limits


@pytest.mark.parametrize("op", sorted(REFUSED_QUERY_OPERATORS))
def test_refused_query_operators(op: str) -> None:
    with pytest.raises(RuleDenied) as info:
        check_query({"$or": [{"a": 1}, {"b": {op: 1}}]} if op != "$where" else {op: "1"})
    assert info.value.code == "ArgumentsNotAllowed"


@pytest.mark.parametrize("stage", sorted(REFUSED_STAGES))
def test_refused_stages(stage: str) -> None:
    with pytest.raises(RuleDenied):
        check_pipeline([{"$match": {}}, {stage: {}}])


def test_allowed_queries_and_pipelines_pass() -> None:
    check_query(
        {"a": {"$in": [1, 2]}, "$or": [{"b": {"$gte": 1}}, {"c": {"$exists": True}}], "d": {"$mod": [2, 0]}}
    )
    check_pipeline([{"$match": {"a": 1}}, {"$group": {"_id": "$a", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}])
