"""What the ``appusers`` commands print: one JSON document with ``--json``, readable text otherwise.

Every command returns an :class:`Outcome`: ``data`` (the JSON document, stable
keys), ``text`` (the human rendering, on stdout) and optional ``notes`` (human
remarks, on stderr, so ``KEY=$(appusers api-keys create ci)`` captures the key
alone). Values from the server are BSON (ObjectId, Int64, dates...): they are
written as relaxed Extended JSON, which is plain JSON, or canonical EJSON on
request.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import attrs
from bson import json_util

from appusers._models import UserState
from appusers._user import User

__all__ = [
    "Outcome", "ejson_text", "ejson_value", "emit", "state_word", "user_line", "user_summary", "user_text",
]

_RELAXED = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED,
    tz_aware=True,
    tzinfo=datetime.UTC,
    uuid_representation=4,
)
_CANONICAL = json_util.JSONOptions(
    json_mode=json_util.JSONMode.CANONICAL,
    tz_aware=True,
    tzinfo=datetime.UTC,
    uuid_representation=4,
)


@attrs.frozen
class Outcome:
    """The result of one command: ``data`` for ``--json``, ``text`` (stdout) and ``notes``
    (stderr) for people."""

    data: Mapping[str, Any]
    text: str = ""
    notes: tuple[str, ...] = ()


def ejson_value(value: Any, *, canonical: bool = False) -> Any:
    """``value`` (Python/BSON) as a JSON-compatible value in relaxed (or canonical) EJSON."""
    return json.loads(json_util.dumps(value, json_options=_CANONICAL if canonical else _RELAXED))


def ejson_text(value: Any, *, canonical: bool = False) -> str:
    """``value`` as indented Extended JSON text for people (scalars on one line)."""
    plain = ejson_value(value, canonical=canonical)
    if isinstance(plain, dict | list) and plain:
        return json.dumps(plain, indent=2, ensure_ascii=False)
    return json.dumps(plain, ensure_ascii=False)


def user_summary(user: User, *, current: User | None) -> dict[str, Any]:
    """The JSON description of ``user``: never a token.

    Keys: ``id``, ``state`` ("LoggedIn" | "LoggedOut"), ``current``, ``anonymous``,
    ``providers`` (provider types of its identities), ``identities``
    (``[{"id", "provider_type"}]``), ``email`` and ``name`` (or null), ``profile``
    (the profile data).
    """
    identities = user.identities
    profile = user.profile
    return {
        "id": user.id,
        "state": user.state.value,
        "current": current is user,
        "anonymous": user.is_anonymous(),
        "providers": sorted({i.provider_type for i in identities}),
        "identities": [{"id": i.id, "provider_type": i.provider_type} for i in identities],
        "email": profile.email,
        "name": profile.name,
        "profile": ejson_value(dict(profile.data)),
    }


def user_line(summary: Mapping[str, Any]) -> str:
    """One row of the ``users`` table: a ``*`` marks the current user."""
    mark = "*" if summary["current"] else " "
    providers = ",".join(summary["providers"]) or "-"
    who = summary["email"] or summary["name"] or ("(anonymous)" if summary["anonymous"] else "")
    return f"{mark} {summary['id']}  {summary['state']:<9}  {providers:<22}  {who}".rstrip()


def user_text(summary: Mapping[str, Any]) -> str:
    """``whoami`` for people."""
    rows = [
        ("user id", summary["id"]),
        ("state", summary["state"]),
        ("email", summary["email"] or "-"),
        ("name", summary["name"] or "-"),
        ("providers", ", ".join(summary["providers"]) or "-"),
        ("anonymous", "yes" if summary["anonymous"] else "no"),
    ]
    return "\n".join(f"{label + ':':<11} {value}" for label, value in rows)


def state_word(state: UserState) -> str:
    return {UserState.LOGGED_IN: "logged in", UserState.LOGGED_OUT: "logged out"}.get(state, "removed")


def emit(
    outcome: Outcome, *, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> None:
    """Print ``outcome``: the JSON document alone on stdout, or its text and notes."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    if json_mode:
        out.write(json.dumps(outcome.data, sort_keys=True) + "\n")
        return
    for note in outcome.notes:
        err.write(note + "\n")
    err.flush()
    if outcome.text:
        out.write(outcome.text + "\n")
    out.flush()
