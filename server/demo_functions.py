"""Demo functions loaded by the server's DEMO settings (``load_config(None)``).

Every public function here is callable over ``functions/call`` as
``fn(context, *args)``; some are also the demo's login-time hooks
(``context.user`` is None there). They are for local development and tests:
the hooks accept made-up credentials of a documented shape, so never use this
module with a server reachable by anyone else.
"""

from __future__ import annotations

from typing import Any

_CUSTOM_DATA = ("appusers", "custom_data", "user_id")  # database, collection, user-id field of the demo


def sum(context: Any, *args: Any) -> Any:
    """Add the numeric arguments: ``sum(2, 2.5) == 4.5``."""
    total: Any = 0
    for value in args:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("sum expects numbers")
        total += value
    return total


def echo(context: Any, *args: Any) -> list[Any]:
    """Return the arguments as a list, unchanged (EJSON round trips: ObjectId, dates, Decimal128...)."""
    return list(args)


def whoami(context: Any) -> dict[str, Any]:
    """The caller as functions see it: id, type, identities, profile data and custom data."""
    user = context.user
    if user is None:
        return {"id": None}
    return {
        "id": user.id,
        "type": user.type,
        "identities": [dict(i) for i in user.identities],
        "data": dict(user.data),
        "custom_data": dict(user.custom_data),
    }


async def set_custom_data(context: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Merge ``fields`` into the caller's custom-data document (created on first use).

    Refresh the access token afterwards to see the change in ``user_data``.
    """
    if context.user is None:
        raise PermissionError("must be called by a user")
    if not isinstance(fields, dict):
        raise TypeError("set_custom_data expects an object")
    database, collection, field = _CUSTOM_DATA
    coll = context.services.get("mongodb-atlas").db(database).collection(collection)
    update = {k: v for k, v in fields.items() if k not in ("_id", field)}
    await coll.update_one({field: context.user.id}, {"$set": {field: context.user.id, **update}}, upsert=True)
    doc = await coll.find_one({field: context.user.id})
    return {k: v for k, v in (doc or {}).items() if k != "_id"}


def authenticate(context: Any, payload: dict[str, Any]) -> str:
    """custom-function login: ``{"username": "<non-empty string>"}`` -> that string as the identity id.

    Rejects anything else, and any payload with ``"reject": true``.
    """
    if not isinstance(payload, dict):
        raise ValueError("payload must be an object")
    username = payload.get("username")
    if not isinstance(username, str) or not username.strip():
        raise ValueError("payload needs a non-empty 'username'")
    if payload.get("reject") is True:
        raise PermissionError("rejected by the authentication function")
    return username.strip()


def confirm_user(context: Any, payload: dict[str, Any]) -> dict[str, str]:
    """Custom confirmation function (``{token, tokenId, username}``).

    Emails containing ``pending`` stay pending, containing ``fail`` are rejected;
    every other address is confirmed at once.
    """
    email = str(payload.get("username", ""))
    if "fail" in email:
        return {"status": "fail"}
    if "pending" in email:
        return {"status": "pending"}
    return {"status": "success"}


def reset_password(context: Any, payload: dict[str, Any], *args: Any) -> dict[str, str]:
    """Custom reset function (``{token, tokenId, username, password, currentPasswordValid}, *args``).

    DEMO ONLY: the first extra argument decides: ``"success"`` resets the password
    at once, ``"pending"`` leaves it to an emailed token, anything else fails.
    """
    choice = args[0] if args else None
    if choice in ("success", "pending"):
        return {"status": str(choice)}
    return {"status": "fail"}


def verify_facebook(context: Any, access_token: str) -> dict[str, str]:
    """oauth2-facebook verifier: accepts ``demo-fb:<id>[:<name>]`` and returns the user info."""
    parts = str(access_token).split(":")
    if len(parts) < 2 or parts[0] != "demo-fb" or not parts[1]:
        raise PermissionError("invalid Facebook access token")
    info = {"id": parts[1]}
    if len(parts) > 2 and parts[2]:
        info["name"] = parts[2]
    return info


def exchange_google_code(context: Any, code: str) -> dict[str, str]:
    """oauth2-google auth-code exchange: accepts ``demo-google:<sub>[:<email>]``."""
    parts = str(code).split(":")
    if len(parts) < 2 or parts[0] != "demo-google" or not parts[1]:
        raise PermissionError("invalid Google auth code")
    info = {"sub": parts[1]}
    if len(parts) > 2 and parts[2]:
        info["email"] = parts[2]
        info["name"] = parts[2].split("@")[0]
    return info
