"""Rules enforced by a real local server: custom rule sets (field-level, namespaces without
rules, roles that never apply, %function), functions under the caller's rules or as system."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from appusers import App, Credentials, User
from appusers.errors import ServiceError
from appusers.server import LocalServer, ServerConfig
from appusers.server.rules import DefaultRule, FieldRule, NamespaceRule, Role
from appusers.testing import fast_config

FUNCTIONS = """
def authenticate(context, payload):
    return payload["username"]

async def my_notes(context):
    coll = context.services.get("mongodb-atlas").db("d").collection("notes")
    return [d["text"] for d in await coll.find({})]
"""

NOTES_RULE = NamespaceRule(
    database="d",
    collection="notes",
    roles=(
        Role(
            name="owner",
            apply_when={"owner_id": "%%user.id"},
            fields={"role": FieldRule(read=True, write=False), "private": FieldRule(read=False, write=False)},
            additional_fields=FieldRule(read=True, write=True),
        ),
        Role(name="public", apply_when={"public": True}, fields={"text": FieldRule(read=True)}),
        Role(name="never", apply_when={"%%false": True}, read=True, write=True),
    ),
)
OPEN_RULE = NamespaceRule(  # an explicit permissive rule, for the one namespace that needs it
    database="d", collection="open", roles=(Role(name="readAndWriteAll", read=True, write=True),)
)


@pytest.fixture
def appusers_config(tmp_path: Path) -> ServerConfig:
    """The suite's server (appusers.testing's) with this module's functions and rules."""
    module = tmp_path / "functions.py"
    module.write_text(FUNCTIONS)
    return attrs.evolve(
        fast_config(), functions_module=module, rules=(NOTES_RULE, OPEN_RULE), default_rules=()
    )


async def login(app: App, name: str) -> User:
    return await app.log_in(Credentials.function({"username": name}))


def coll(user: User, name: str = "notes", db: str = "d") -> Any:
    return user.mongo_client("mongo-db").db(db).collection(name)


async def test_namespace_without_rule_is_denied(app: App) -> None:
    ana = await login(app, "ana")
    with pytest.raises(ServiceError) as info:
        await coll(ana, "other").find({})
    assert (info.value.status, info.value.error_code) == (403, "NoMatchingRuleFound")
    assert "no rule exists for namespace 'd.other'" in str(info.value)
    with pytest.raises(ServiceError):
        await coll(ana, "anything", db="admin").insert_one({"x": 1})


async def test_explicit_permissive_rule_opens_one_namespace(app: App) -> None:
    ana, bob = await login(app, "ana"), await login(app, "bob")
    await coll(ana, "open").insert_one({"x": 1})
    assert [d["x"] for d in await coll(bob, "open").find({})] == [1]


async def test_field_level_reads_and_writes(app: App, server: LocalServer) -> None:
    ana, bob = await login(app, "ana"), await login(app, "bob")
    raw = server._server_app.documents.collection("d", "notes")
    doc_id = await raw.insert_one(
        {"owner_id": ana.id, "text": "t", "role": "user", "private": "p", "public": True}
    )
    mine = coll(ana)
    assert await mine.find_one({}) == {
        "_id": doc_id,
        "owner_id": ana.id,
        "text": "t",
        "role": "user",
        "public": True,
    }
    # bob gets the "public" role for this document: only `text` (and the id).
    assert await coll(bob).find({}) == [{"_id": doc_id, "text": "t"}]
    # Projections and pipelines see only what the user may read.
    assert await mine.find({}, projection={"private": 1}) == [{"_id": doc_id}]
    assert await coll(bob).aggregate([{"$project": {"private": 1, "role": 1}}]) == [{"_id": doc_id}]
    # Writes: a field the role may not write is refused, nothing is applied.
    for update in (
        {"$set": {"role": "admin"}},
        {"$set": {"text": "u", "role": "admin"}},
        {"$unset": {"private": 1}},
    ):
        with pytest.raises(ServiceError) as info:
            await mine.update_one({"_id": doc_id}, update)
        assert info.value.error_code == "NoMatchingRuleFound"
    assert (await mine.update_one({"_id": doc_id}, {"$set": {"text": "u"}})).modified_count == 1
    stored = await raw.find_one({"_id": doc_id})
    assert stored is not None and (stored["text"], stored["role"], stored["private"]) == ("u", "user", "p")
    # bob's role cannot write at all.
    with pytest.raises(ServiceError):
        await coll(bob).update_one({"_id": doc_id}, {"$set": {"text": "bob was here"}})
    assert (await raw.find_one({"_id": doc_id}) or {})["text"] == "u"


async def test_role_that_never_applies_gives_nothing(app: App, server: LocalServer) -> None:
    bob = await login(app, "bob")
    await server._server_app.documents.collection("d", "notes").insert_one(
        {"owner_id": "someone", "text": "x"}
    )
    assert await coll(bob).find({}) == []
    assert await coll(bob).count({}) == 0


async def test_functions_run_under_the_callers_rules_unless_system(app: App, server: LocalServer) -> None:
    ana, bob = await login(app, "ana"), await login(app, "bob")
    await coll(ana).insert_one({"owner_id": ana.id, "text": "ana's"})
    await coll(bob).insert_one({"owner_id": bob.id, "text": "bob's"})
    assert await bob.functions.my_notes() == ["bob's"]
    assert await ana.functions.my_notes() == ["ana's"]
    sapp = server._server_app
    records = await sapp.store.get_user(bob.id)
    assert records is not None
    context = sapp.context(await sapp.function_user(records))
    assert context.run_as_system is False
    user_view = await context.services.get("mongodb-atlas").db("d").collection("notes").find({})
    assert [d["text"] for d in user_view] == ["bob's"]
    system = attrs.evolve(context, run_as_system=True)
    everything = await system.services.get("mongodb-atlas").db("d").collection("notes").find({})
    assert sorted(d["text"] for d in everything) == ["ana's", "bob's"]
    # Login-time hooks (no caller) use the store directly.
    hook = sapp.context(None)
    assert len(await hook.services.get("mongodb-atlas").db("d").collection("notes").find({})) == 2


async def test_function_rules_and_malformed_arguments(tmp_path: Path) -> None:
    module = tmp_path / "f.py"
    module.write_text(
        "def is_vip(context, user_id):\n"
        "    return user_id == context.user.id and context.user.identities[0]['id'] == 'vip'\n"
        "def authenticate(context, payload):\n"
        "    return payload['username']\n"
    )
    rule = NamespaceRule(
        database="d",
        collection="vip",
        roles=(
            Role(
                name="vip",
                apply_when={"%%true": {"%function": {"name": "is_vip", "arguments": ["%%user.id"]}}},
                read=True,
                write=True,
            ),
        ),
    )
    config = attrs.evolve(fast_config(), functions_module=module, rules=(rule,), default_rules=())
    async with (
        LocalServer(config=config, data_dir=tmp_path / "s") as srv,
        App(srv.app_id, base_url=srv.url) as app,
    ):
        vip = await login(app, "vip")
        other = await login(app, "nobody")
        await coll(vip, "vip").insert_one({"x": 1})
        assert len(await coll(vip, "vip").find({})) == 1
        assert await coll(other, "vip").find({}) == []
        with pytest.raises(ServiceError):
            await coll(other, "vip").insert_one({"x": 2})


def test_default_rule_of_the_demo_is_owner_only() -> None:
    config = fast_config()
    assert config.default_rules == (
        DefaultRule(roles=(Role(name="owner", apply_when={"owner_id": "%%user.id"}, read=True, write=True),)),
    )


async def test_request_expansion_reaches_rules(tmp_path: Path) -> None:
    rule = NamespaceRule(
        database="d",
        collection="lan",
        roles=(
            Role(
                name="loopback",
                apply_when={
                    "%%request.remoteIPAddress": {"$in": ["127.0.0.1", "::1"]},
                    "%%request.action": "find",
                },
                read=True,
            ),
        ),
    )
    config = attrs.evolve(fast_config(), rules=(rule,), default_rules=())
    async with (
        LocalServer(config=config, data_dir=tmp_path / "s") as srv,
        App(srv.app_id, base_url=srv.url) as app,
    ):
        await srv._server_app.documents.collection("d", "lan").insert_one({"x": 1})
        user = await app.log_in(Credentials.anonymous())
        assert [d["x"] for d in await coll(user, "lan").find({})] == [1]
        assert await coll(user, "lan").count({}) == 0  # the action is "count": the role does not apply
