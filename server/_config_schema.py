"""Which tables and keys a settings file may have: a misspelt one is an error, not a silent default.

``check_keys`` runs before the values are read (``_config._from_mapping``): an unknown
table or key is a :class:`ConfigError` naming it, with the closest known name when there
is one (``tokens.access_lifetme: unknown key; did you mean access_lifetime?``). Tables
whose entries are checked where they are parsed (``[[rules]]``, ``[default_rule]``,
``[[functions.config]]``, ``[[triggers]]``, ``[environment]``) and free-form ones
(``[values]``) are only named here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigError

__all__ = ["SCHEMA", "check_keys", "type_name"]

_ANY = None  # a table whose keys are checked elsewhere, or are free-form

_OPENID = frozenset({"enabled", "client_id", "jwks_file", "code_exchange_function"})

#: table -> its keys (a nested dict: a sub-table; ``_ANY``: not checked here).
SCHEMA: Mapping[str, Any] = {
    "app_id": (),
    "functions": {"module": (), "config": _ANY},
    "values": _ANY,
    "environment": _ANY,
    "triggers": _ANY,
    "rules": _ANY,
    "default_rule": _ANY,
    "tokens": frozenset({"access_lifetime", "refresh_lifetime"}),
    "custom_data": frozenset({
        "enabled", "database", "collection", "user_id_field", "service", "max_token_bytes",
        "on_user_creation_function",
    }),
    # The MongoDB service's documents (uri absent: the embedded store in the data directory).
    "mongodb": frozenset({"services", "uri", "connect_timeout"}),
    "limits": frozenset({
        "max_body_bytes", "function_timeout", "document_timeout", "watch_buffer_bytes",
        "watch_streams_per_user", "watch_streams",
    }),
    "http": frozenset({
        "read_timeout", "max_connections_per_address", "max_header_bytes", "trusted_proxies",
        "allowed_origins",
    }),
    "throttle": frozenset({
        "enabled", "account_free_failures", "address_free_failures", "account_wide_free_failures",
        "base_delay", "max_delay", "account_wide_max_delay", "window", "known_for",
        "userpass_per_address", "userpass_address_rate", "userpass_per_email", "userpass_email_rate",
    }),
    "security": frozenset({
        "scrypt_n", "scrypt_r", "scrypt_p", "hash_workers", "hash_max_waiting", "hash_nice",
    }),
    "admin": frozenset({
        "key_file", "public_key", "private_key", "private_key_sha256", "access_lifetime", "refresh_lifetime",
    }),
    "users": frozenset({"anonymous_inactive_days", "purge_interval"}),
    # The user store (PostgreSQL shared by several servers; absent: the embedded SQLite file).
    "database": frozenset({"url", "pool_size", "pool_min", "connect_timeout"}),
    "providers": {
        "anon-user": frozenset({"enabled"}),
        "local-userpass": frozenset({
            "enabled", "auto_confirm", "confirmation_function", "reset_function", "token_lifetime",
            "prevent_user_enumeration",
        }),
        "api-key": {"enabled": (), "server_keys": [frozenset({"name", "key", "key_sha256"})]},
        "custom-token": {
            "enabled": (), "algorithm": (), "key": (), "key_file": (), "audience": (),
            "metadata_fields": [frozenset({"path", "field_name", "required"})],
        },
        "custom-function": frozenset({"enabled", "function"}),
        "oauth2-google": _OPENID,
        "oauth2-facebook": frozenset({"enabled", "verifier_function"}),
        "oauth2-apple": _OPENID,
    },
}


def type_name(kind: type | tuple[type, ...]) -> str:
    """``int`` -> ``an integer``; ``(int, float)`` -> ``a number``, as a TOML reader would say it."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return " or ".join(words.get(k, k.__name__) for k in kinds)


def _value_name(value: Any) -> str:
    kind = type(value)
    return type_name(kind) if kind in (bool, int, float, str, list, dict) else kind.__name__


def check_keys(raw: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first unknown table or key of ``raw``."""
    _check(raw, SCHEMA, "")


def _check(table: Mapping[str, Any], schema: Mapping[str, Any] | frozenset[str], where: str) -> None:
    known = set(schema)
    for key, value in table.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(sorted(known))})"
            what = "table" if isinstance(value, Mapping) else "key"
            raise ConfigError(f"{_show(path, value)}: unknown {what}{hint}")
        if not isinstance(schema, Mapping):
            continue
        sub = schema[key]
        if sub is _ANY or sub == ():
            continue
        if isinstance(sub, list):  # an array of tables with these keys
            if isinstance(value, list):
                for i, entry in enumerate(value):
                    if isinstance(entry, Mapping):
                        _check(entry, sub[0], f"{path}[{i}]")
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{path}] must be a table, not {_value_name(value)}")
        _check(value, sub, path)


def _show(path: str, value: Any) -> str:
    return f"[{path}]" if isinstance(value, Mapping) else path
