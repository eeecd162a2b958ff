"""How functions run: per-function settings, values, the environment, authentication triggers.

The same shapes come from the TOML settings (``[[functions.config]]``, ``[values]``,
``[environment]``, ``[[triggers]]``) and from an exported app directory
(``functions/config.json``, ``values/*.json``, ``environments/*.json``,
``triggers/*.json``); both go through the parsers here, so a key means the same in
either place. Every parser raises :class:`ConfigError` naming where the bad key is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from ._errors import ConfigError

__all__ = [
    "AUTH_OPERATIONS",
    "AuthTrigger",
    "EnvironmentSettings",
    "FunctionSettings",
    "parse_auth_trigger",
    "parse_environment",
    "parse_function_settings",
]

#: ``config.operation_type`` values of an authentication trigger.
AUTH_OPERATIONS: Final = ("CREATE", "LOGIN", "DELETE")
#: Provider names an authentication trigger may list (App Services' trigger configuration).
TRIGGER_PROVIDERS: Final = frozenset(
    {
        "anon-user",
        "local-userpass",
        "api-key",
        "custom-token",
        "custom-function",
        "oauth2-facebook",
        "oauth2-google",
        "oauth2-apple",
    }
)
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
_TRIGGER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@attrs.frozen
class FunctionSettings:
    """One entry of ``functions/config.json`` (or ``[[functions.config]]``)."""

    name: str
    #: Callable only from other functions, rule ``%function``, hooks and triggers, never by clients.
    private: bool = False
    #: Run as the system user: ``context.services`` bypasses the rules.
    run_as_system: bool = False
    #: Rule expression checked on every client call (None: every logged-in caller).
    can_evaluate: Any = None
    #: Leave the arguments out of the log (accepted; this server never logs arguments).
    disable_arg_logs: bool = False
    #: The file defining ``main(context, *args)``; None: the function of the functions module.
    source: Path | None = None


@attrs.frozen
class EnvironmentSettings:
    """``context.environment`` and ``%%environment``: the environment's tag and values."""

    tag: str = ""
    values: Mapping[str, Any] = attrs.field(factory=dict)

    def as_expansion(self) -> dict[str, Any]:
        """``{"tag", "values"}`` as rule expressions see it."""
        return {"tag": self.tag, "values": dict(self.values)}


@attrs.frozen
class AuthTrigger:
    """An ``AUTHENTICATION`` trigger: run ``function`` on matching log-ins, creations, deletions."""

    name: str
    function: str
    operations: tuple[str, ...]
    providers: tuple[str, ...]
    disabled: bool = False

    def matches(self, operation: str, providers: tuple[str, ...]) -> bool:
        """Whether an ``operation`` event through ``providers`` fires this trigger."""
        return (
            not self.disabled
            and operation in self.operations
            and any(p in self.providers for p in providers)
        )


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _bool(entry: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{_where(where, key)} must be true or false")
    return value


def _check_keys(entry: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    for key in entry:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{_where(where, str(key))}: unknown key{hint}")


def check_function_name(name: Any, where: str) -> str:
    """``name`` if it is a valid function name (``a`` or ``a/b``), else ConfigError."""
    if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
        raise ConfigError(f"{where} must be a function name ([A-Za-z0-9_-], '/' between parts)")
    return name


def check_expression_at(expr: Any, where: str) -> Any:
    """``expr`` if it is a well-formed rule expression (``None`` passes), else ConfigError."""
    if expr is None:
        return None
    from .rules import check_expression

    try:
        check_expression(expr, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return expr


_FUNCTION_KEYS = frozenset(
    {
        "name",
        "private",
        "can_evaluate",
        "disable_arg_logs",
        "run_as_system",
        "run_as_user_id",
        "run_as_user_id_script_source",
        "id",
    }
)


def parse_function_settings(entry: Any, where: str, *, source_key: bool = False) -> FunctionSettings:
    """One function entry; ``source_key`` also allows ``source`` (a path, TOML only)."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be an object")
    _check_keys(entry, _FUNCTION_KEYS | ({"source"} if source_key else frozenset()), where)
    name = check_function_name(entry.get("name"), _where(where, "name"))
    for key in ("run_as_user_id", "run_as_user_id_script_source"):
        value = entry.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{_where(where, key)} must be a string")
        if value:
            raise ConfigError(
                f"{_where(where, key)}: running as a fixed or scripted user is not supported; "
                "use run_as_system or the caller (leave it empty)"
            )
    can_evaluate = entry.get("can_evaluate")
    if can_evaluate == {} or can_evaluate is True:
        can_evaluate = None  # the export's way of saying "every caller"
    source = entry.get("source")
    if source is not None and not isinstance(source, str):
        raise ConfigError(f"{_where(where, 'source')} must be a path")
    return FunctionSettings(
        name=name,
        private=_bool(entry, "private", False, where),
        run_as_system=_bool(entry, "run_as_system", False, where),
        can_evaluate=check_expression_at(can_evaluate, _where(where, "can_evaluate")),
        disable_arg_logs=_bool(entry, "disable_arg_logs", False, where),
        source=Path(source) if source is not None else None,
    )


def parse_environment(tag: Any, values: Any, where: str) -> EnvironmentSettings:
    """An environment named ``tag`` with its ``values`` object."""
    if not isinstance(tag, str):
        raise ConfigError(f"{_where(where, 'tag')} must be a string")
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise ConfigError(f"{_where(where, 'values')} must be an object")
    return EnvironmentSettings(tag=tag, values=dict(values))


_TRIGGER_KEYS = frozenset(
    {
        "name",
        "type",
        "disabled",
        "config",
        "function_name",
        "function_id",
        "event_processors",
        "error_handler",
        "id",
    }
)


def parse_auth_trigger(entry: Any, where: str) -> AuthTrigger:
    """An ``AUTHENTICATION`` trigger document (``triggers/<name>.json`` shape)."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where or 'a trigger'} must be an object")
    _check_keys(entry, _TRIGGER_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not _TRIGGER_NAME.match(name):
        raise ConfigError(f"{_where(where, 'name')} must be 1-64 characters of [A-Za-z0-9_-]")
    if entry.get("type") != "AUTHENTICATION":
        raise ConfigError(f"{_where(where, 'type')} must be \"AUTHENTICATION\"")
    config = entry.get("config")
    if not isinstance(config, Mapping):
        raise ConfigError(f"{_where(where, 'config')} must be an object")
    known = frozenset({"operation_type", "operation_types", "providers"})
    _check_keys(config, known, _where(where, "config"))
    ops = config.get("operation_type", config.get("operation_types"))
    ops_where = _where(where, "config.operation_type")
    operations = (ops,) if isinstance(ops, str) else ops
    if (
        not isinstance(operations, (list, tuple))
        or not operations
        or not all(op in AUTH_OPERATIONS for op in operations)
    ):
        raise ConfigError(f"{ops_where} must be one of CREATE, LOGIN, DELETE (a string or an array)")
    providers = config.get("providers")
    prov_where = _where(where, "config.providers")
    if not isinstance(providers, (list, tuple)) or not providers:
        raise ConfigError(f"{prov_where} must be a non-empty array of provider names")
    for provider in providers:
        if provider not in TRIGGER_PROVIDERS:
            raise ConfigError(f"{prov_where}: unknown provider {provider!r}")
    return AuthTrigger(
        name=name,
        function=_trigger_function(entry, where),
        operations=tuple(dict.fromkeys(operations)),
        providers=tuple(dict.fromkeys(providers)),
        disabled=_bool(entry, "disabled", False, where),
    )


def _trigger_function(entry: Mapping[str, Any], where: str) -> str:
    processors = entry.get("event_processors")
    if processors is not None and "function_name" in entry:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}give either function_name or event_processors, not both")
    if processors is None:
        return check_function_name(entry.get("function_name"), _where(where, "function_name"))
    at = _where(where, "event_processors")
    if not isinstance(processors, Mapping) or set(processors) != {"FUNCTION"}:
        raise ConfigError(f"{at} must be {{\"FUNCTION\": {{\"config\": {{\"function_name\": ...}}}}}}")
    function = processors["FUNCTION"]
    config = function.get("config") if isinstance(function, Mapping) else None
    if not isinstance(config, Mapping):
        raise ConfigError(f"{at}.FUNCTION.config must be an object")
    _check_keys(function, frozenset({"config", "type"}), f"{at}.FUNCTION")
    _check_keys(config, frozenset({"function_name", "function_id"}), f"{at}.FUNCTION.config")
    return check_function_name(config.get("function_name"), f"{at}.FUNCTION.config.function_name")


def from_toml(raw: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``[[functions.config]]``, ``[values]``, ``[environment]``, ``[[triggers]]`` as
    :class:`ServerConfig` keyword arguments (relative ``source`` paths are relative to ``base``)."""
    functions = raw.get("functions", {})
    entries = functions.get("config", []) if isinstance(functions, Mapping) else []
    if not isinstance(entries, list):
        raise ConfigError("functions.config must be an array of tables ([[functions.config]])")
    settings: list[FunctionSettings] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        parsed = parse_function_settings(entry, f"functions.config[{i}]", source_key=True)
        if parsed.name in seen:
            raise ConfigError(f"functions.config[{i}].name: {parsed.name!r} is listed twice")
        seen.add(parsed.name)
        if parsed.source is not None and not parsed.source.is_absolute():
            parsed = attrs.evolve(parsed, source=base / parsed.source.expanduser())
        settings.append(parsed)
    values = raw.get("values", {})
    if not isinstance(values, Mapping):
        raise ConfigError("[values] must be a table")
    env = raw.get("environment", {})
    if not isinstance(env, Mapping):
        raise ConfigError("[environment] must be a table")
    _check_keys(env, frozenset({"tag", "values"}), "environment")
    triggers = raw.get("triggers", [])
    if not isinstance(triggers, list):
        raise ConfigError("triggers must be an array of tables ([[triggers]])")
    parsed_triggers = [parse_auth_trigger(t, f"triggers[{i}]") for i, t in enumerate(triggers)]
    names = [t.name for t in parsed_triggers]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"triggers[{i}].name: {name!r} is used twice")
    return {
        "function_settings": tuple(settings),
        "values": dict(values),
        "environment": parse_environment(env.get("tag", ""), env.get("values", {}), "environment"),
        "triggers": tuple(parsed_triggers),
    }
