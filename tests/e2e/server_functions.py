"""The functions module of the e2e server (copied next to its config for each server).

The custom confirmation and reset functions "send" their token the way a real
app's function would (here: a JSON line in ``function_outbox.jsonl`` next to
this file), so a test can finish a ``pending`` flow with ``confirm_user`` /
``reset_password``. The new password itself is never written anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_OUTBOX = Path(__file__).with_name("function_outbox.jsonl")
_CONFIRM_CALLS: dict[str, int] = {}


def _send(kind: str, payload: dict[str, Any], args: list[Any]) -> None:
    line = {"kind": kind, "email": payload.get("username"), "token": payload.get("token"),
            "tokenId": payload.get("tokenId"), "args": args}
    with _OUTBOX.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def confirm_user(context: Any, payload: dict[str, Any]) -> dict[str, str]:
    """``fail`` in the address: rejected; ``pending``: left to the token this sends;
    ``second``: pending on the first call, confirmed on the next; ``flip``: pending on
    the first call, rejected on the next; else confirmed."""
    email = str(payload.get("username", ""))
    calls = _CONFIRM_CALLS[email] = _CONFIRM_CALLS.get(email, 0) + 1
    _send("confirm", payload, [])
    if "fail" in email:
        return {"status": "fail"}
    if "pending" in email:
        return {"status": "pending"}
    if "second" in email:
        return {"status": "success" if calls >= 2 else "pending"}
    if "flip" in email:
        return {"status": "fail" if calls >= 2 else "pending"}
    return {"status": "success"}


def reset_password(context: Any, payload: dict[str, Any], *args: Any) -> dict[str, str]:
    """The first extra argument decides: ``"success"``, ``"pending"`` (token sent), else fail."""
    _send("reset", payload, list(args))
    choice = args[0] if args else None
    return {"status": choice} if choice in ("success", "pending") else {"status": "fail"}


async def set_custom_data(context: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Merge ``fields`` into the caller's custom-data document."""
    user_id = context.user.id
    coll = context.services.get("mongodb-atlas").db("appusers").collection("custom_data")
    await coll.update_one({"user_id": user_id}, {"$set": {"user_id": user_id, **fields}}, upsert=True)
    return {"ok": True}


def whoami(context: Any) -> dict[str, Any]:
    """The caller's id, type and identity types."""
    user = context.user
    return {"id": user.id, "type": user.type,
            "identities": [i["provider_type"] for i in user.identities]}
