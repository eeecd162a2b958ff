"""S11 and S12: a second user against the first one's data, and clients calling private functions.

A real LocalServer on 127.0.0.1 with the demo rules (each user reads and writes only their own
custom-data document and, elsewhere, only documents whose ``owner_id`` is their id) and the
demo functions (the providers' hooks are private). The attacker is an anonymous user, the
victim an email/password user; every attempt goes over the wire protocol, as any client could
send it. The figures count what the server let through (target 0) and check afterwards that
the victim's data is unchanged. Rows in the shape ``benchmarks/reliability.py`` collects.

    python benchmarks/attacks_authorization.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from _attack_kit import Client, row, serve

SERVICE = "mongodb-atlas"
NOTES = {"database": "private", "collection": "notes"}
CUSTOM = {"database": "appusers", "collection": "custom_data"}
ZERO = (0, {"$numberInt": "0"}, {"$numberLong": "0"})
HOOKS = ("authenticate", "reset_password", "verify_facebook", "exchange_google_code")


def _oid(value: Any) -> dict[str, str]:
    return {"$oid": value["$oid"]} if isinstance(value, dict) else {"$oid": str(value)}


async def _act(client: Client, token: str, action: str, args: dict[str, Any]) -> tuple[int, Any]:
    return await client.call(token, action, args, service=SERVICE)


def _leaked(status: int, body: Any, secret: str) -> bool:
    """Whether an answer carries the victim's secret."""
    return status == 200 and secret in json.dumps(body)


def _wrote(status: int, body: Any) -> bool:
    """Whether an answer says a document was written, replaced, deleted or inserted."""
    if status != 200 or not isinstance(body, dict):
        return status == 200 and body not in (None, [], {})
    for key in ("modifiedCount", "deletedCount", "matchedCount"):
        count = body.get(key)
        if isinstance(count, dict):
            count = int(next(iter(count.values())))
        if count:
            return True
    return bool(body.get("insertedId") or body.get("insertedIds") or body.get("upsertedId"))


async def cross_user() -> dict[str, str]:
    async with serve() as client:
        ana = await client.confirmed_user("ana@example.com", "s3cret-pass")
        eve = await client.login("anon-user")
        a, e = ana["access_token"], eve["access_token"]
        secret = "A's diary 7f3a"
        victim, attacker = ana["user_id"], eve["user_id"]
        diary = {"owner_id": victim, "secret": secret}
        status, inserted = await _act(client, a, "insertOne", {**NOTES, "document": diary})
        assert status == 200, inserted
        note = _oid(inserted["insertedId"])
        status, body = await client.call(a, "set_custom_data", {"role": "user", "secret": secret})
        assert status == 200, body
        by_id = {"_id": note}
        admin = {"$set": {"role": "admin"}}
        reads = [
            ("find", {**NOTES, "query": {}}),
            ("findOne", {**NOTES, "query": by_id}),
            ("aggregate", {**NOTES, "pipeline": [{"$match": {}}]}),
            ("count", {**NOTES, "query": {}}),
            ("find", {**CUSTOM, "query": {}}),
            ("findOne", {**CUSTOM, "query": {"user_id": victim}}),
            ("aggregate", {**CUSTOM, "pipeline": [{"$match": {"user_id": victim}}]}),
        ]
        writes = [
            ("updateOne", {**NOTES, "query": by_id, "update": {"$set": {"secret": "overwritten"}}}),
            ("updateMany", {**NOTES, "query": {}, "update": {"$set": {"secret": "overwritten"}}}),
            ("findOneAndUpdate", {**NOTES, "filter": by_id, "update": {"$set": {"secret": "x"}}}),
            ("findOneAndReplace", {**NOTES, "filter": by_id, "replacement": {"owner_id": attacker}}),
            ("findOneAndDelete", {**NOTES, "filter": by_id}),
            ("deleteOne", {**NOTES, "query": by_id}),
            ("deleteMany", {**NOTES, "query": {}}),
            ("insertOne", {**NOTES, "document": {"owner_id": victim, "planted": True}}),
            ("insertMany", {**NOTES, "documents": [{"owner_id": attacker}, {"owner_id": victim}]}),
            ("updateOne", {**CUSTOM, "query": {"user_id": victim}, "update": admin}),
            ("updateOne", {**CUSTOM, "query": {"user_id": victim}, "update": admin, "upsert": True}),
            ("insertOne", {**CUSTOM, "document": {"user_id": victim, "role": "admin"}}),
            ("deleteMany", {**CUSTOM, "query": {}}),
        ]
        leaked = 0
        for action, args in reads:
            status, body = await _act(client, e, action, args)
            counted = action == "count" and status == 200 and body not in ZERO
            leaked += _leaked(status, body, secret) or counted
        written = 0
        server_errors = 0
        for action, args in writes:
            status, body = await _act(client, e, action, args)
            written += _wrote(status, body)
            server_errors += status >= 500
        # The victim's data afterwards, read as the victim.
        status, mine = await _act(client, a, "find", {**NOTES, "query": {}})
        intact_notes = status == 200 and len(mine) == 1 and mine[0].get("secret") == secret
        status, custom = await _act(client, a, "findOne", {**CUSTOM, "query": {"user_id": victim}})
        intact_custom = status == 200 and isinstance(custom, dict) and custom.get("role") == "user"
    ok = leaked == 0 and written == 0 and server_errors == 0 and intact_notes and intact_custom
    return row(
        "S11",
        "An anonymous user reads, counts, aggregates, updates, replaces, deletes, inserts and upserts "
        "another user's notes and custom-data document (demo rules, wire protocol)",
        "tests/e2e/test_rules.py::test_issue8_b_can_neither_read_nor_overwrite_a_private_note",
        f"reads that returned the victim's data: {leaked}/{len(reads)}; writes that changed or planted "
        f"a document: {written}/{len(writes)}; 5xx: {server_errors}; the victim's note and custom data "
        f"unchanged afterwards: {'yes' if intact_notes and intact_custom else 'NO'}",
        ok,
    )


async def private_functions() -> dict[str, str]:
    async with serve() as client:
        callers = [await client.login("anon-user"), await client.login("custom-function", username="eve")]
        ran = 0
        answers: set[tuple[int, str]] = set()
        for caller in callers:
            for hook in HOOKS:
                status, body = await client.call(caller["access_token"], hook, "demo-fb:1", "success")
                ran += status == 200
                answers.add((status, body.get("error_code", "") if isinstance(body, dict) else ""))
            # A near miss of a private name is as unknown as a private one.
            status, body = await client.call(caller["access_token"], "authenticate ", "x")
            answers.add((status, body.get("error_code", "") if isinstance(body, dict) else ""))
        status, _ = await client.call(callers[0]["access_token"], "sum", 1, 2)
        public_ok = status == 200
    attempts = len(callers) * len(HOOKS)
    uniform = answers == {(404, "FunctionNotFound")}
    return row(
        "S12",
        "Anonymous and custom-function users call the providers' private hooks (authenticate, "
        "reset_password, verify_facebook, exchange_google_code) and near misses of their names",
        "tests/server/test_function_settings.py::test_demo_provider_hooks_are_private",
        f"private hooks run from a client: {ran}/{attempts}; every answer 404 FunctionNotFound (as for "
        f"an unknown name): {'yes' if uniform else 'no: ' + str(sorted(answers))}; a public function "
        f"still answers: {'yes' if public_ok else 'NO'}",
        ran == 0 and uniform and public_ok,
    )


def run() -> list[dict[str, str]]:
    async def both() -> list[dict[str, str]]:
        return [await cross_user(), await private_functions()]

    return asyncio.run(both())


if __name__ == "__main__":
    for r in run():
        print(f"{r['id']:<4} {r['verdict']:<8} {r['figure']}")
