"""Load an App Services app directory, as ``appservices pull`` exports it, into a ServerConfig.

Every file is accounted for: a file this loader reads and maps, a file it knows and
reports as not served (a warning naming it, when it switches on something this server
does not do), or an error naming the file (and the key, inside a file). Nothing is
skipped silently except hidden entries (``.git``, ``.mdb/``: read for the app id only)
and Markdown files at the top level.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._config import (
    CustomDataSettings,
    ProvidersConfig,
    ServerConfig,
)
from .._errors import ConfigError
from .._function_settings import (
    AuthTrigger,
    EnvironmentSettings,
    FunctionSettings,
    check_function_name,
    parse_auth_trigger,
    parse_function_settings,
)
from ._auth import custom_data_settings, providers_config
from ._files import AppFile

__all__ = ["AppDirectory", "load_app_dir", "read_app_dir"]

log = logging.getLogger("appusers.server.appdir")

#: Top-level folders that configure what this server does not serve, and what that means.
_NOT_SERVED = {
    "graphql": "the GraphQL API is not served",
    "hosting": "static hosting is not served",
    "https_endpoints": "HTTPS endpoints are not served",
    "http_endpoints": "HTTP endpoints (older layout) are not served",
    "log_forwarders": "log forwarders do not run",
    "sync": "Device Sync is not served",
}
_ROOT_KEYS = frozenset(
    {
        "name",
        "deployment_model",
        "provider_region",
        "location",
        "environment",
        "allowed_request_origins",
        "config_version",
    }
)
_REALM_CONFIG_KEYS = _ROOT_KEYS | frozenset(
    {"app_id", "security", "custom_user_data_config", "sync", "hosting", "graphql"}
)
_ENVIRONMENTS = ("no-environment", "development", "testing", "qa", "production")
_DATA_SOURCE_KEYS = frozenset({"name", "type", "config", "version", "id"})
_VALUE_KEYS = frozenset({"id", "name", "from_secret", "value"})


@attrs.frozen
class AppDirectory:
    """A loaded app directory: the server settings and what was not loaded, said out loud."""

    config: ServerConfig
    #: One line per known-but-unsupported part found (naming the file) and per JS-only function.
    warnings: tuple[str, ...] = ()


def read_app_dir(
    path: str | Path,
    *,
    app_id: str | None = None,
    environment: str | None = None,
    secrets: Mapping[str, str] | None = None,
) -> AppDirectory:
    """Read the app directory ``path``.

    ``app_id``: the client app id clients use (default: ``.mdb/meta.json``'s
    ``client_app_id``, else ``realm_config.json``'s ``app_id``, else the app's ``name``).
    ``environment``: overrides ``root_config.json``'s ``environment``. ``secrets``: secret
    name -> value, for values with ``from_secret`` and the custom-token signing key.
    """
    return _Loader(Path(path), dict(secrets or {})).load(app_id, environment)


def load_app_dir(
    path: str | Path,
    *,
    app_id: str | None = None,
    environment: str | None = None,
    secrets: Mapping[str, str] | None = None,
) -> ServerConfig:
    """:func:`read_app_dir`, logging each warning; returns the settings for ``LocalServer``."""
    loaded = read_app_dir(path, app_id=app_id, environment=environment, secrets=secrets)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return loaded.config


class _Loader:
    def __init__(self, root: Path, secrets: dict[str, str]):
        if not root.is_dir():
            raise ConfigError(f"app directory not found: {root}")
        self.root = root
        self.secrets = secrets
        self.warnings: list[str] = []
        self._older_custom_data: tuple[AppFile, Mapping[str, Any]] | None = None

    # ------------------------------------------------------------------ helpers
    def file(self, path: Path) -> AppFile:
        return AppFile(self.root, path)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def unknown(self, path: Path, hint: str = "") -> ConfigError:
        rel = path.relative_to(self.root).as_posix() + ("/" if path.is_dir() else "")
        return ConfigError(f"{rel}: unknown file{hint}; an app export does not contain it")

    @staticmethod
    def entries(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))

    def json_files(self, folder: Path) -> list[AppFile]:
        """The ``*.json`` files of ``folder``; anything else in it is an error."""
        found = []
        for path in self.entries(folder):
            if path.is_file() and path.suffix == ".json":
                found.append(self.file(path))
            else:
                raise self.unknown(path, " (only .json files belong here)")
        return found

    # ------------------------------------------------------------------ the whole directory
    def load(self, app_id: str | None, environment: str | None) -> AppDirectory:
        root = self.root
        known = {
            "root_config.json",
            "realm_config.json",
            "auth",
            "auth_providers",
            "data_sources",
            "environments",
            "functions",
            "triggers",
            "values",
            *_NOT_SERVED,
        }
        for path in self.entries(root):
            if path.name == "services":
                raise ConfigError(
                    "services/: the older services layout (rules under services/<svc>/rules/) is not "
                    "supported; export the app again with `appservices pull` (data_sources/ layout)"
                )
            if path.name not in known and not (path.is_file() and path.suffix == ".md"):
                raise self.unknown(path)
        meta = self._root_config()
        name, realm_app_id, env_name = meta
        services = self._data_source_names()
        providers = self._providers()
        custom_data, on_creation = self._custom_data(services)
        rules, default_rules = self._rules(services)
        functions = self._functions()
        values = self._values()
        env = self._environment(environment if environment is not None else env_name, values)
        triggers = self._triggers()
        self._check_references(functions, providers, triggers)
        if on_creation is not None and on_creation not in {f.name for f in functions}:
            raise ConfigError(
                "auth/custom_user_data.json: on_user_creation_function_name: "
                f"function {on_creation!r} is not in functions/config.json"
            )
        for folder, what in _NOT_SERVED.items():
            if (root / folder).exists():
                self._not_served(root / folder, what)
        config = ServerConfig(
            app_id=app_id or self._meta_app_id() or realm_app_id or name,
            providers=providers,
            custom_data=custom_data,
            mongo_services=services,
            function_settings=tuple(functions),
            values=values,
            environment=env,
            triggers=tuple(t for _file, t in triggers),
            rules=rules,
            default_rules=default_rules,
        )
        return AppDirectory(config=config, warnings=tuple(self.warnings))

    # ------------------------------------------------------------------ root_config / realm_config
    def _root_config(self) -> tuple[str, str | None, str]:
        """(name, realm_config.json's app_id, environment name)."""
        paths = [self.root / n for n in ("root_config.json", "realm_config.json")]
        present = [p for p in paths if p.is_file()]
        if not present:
            raise ConfigError(f"{self.root}: no root_config.json (or realm_config.json): not an app export")
        name: str | None = None
        app_id: str | None = None
        env = ""
        for path in present:
            file = self.file(path)
            data = file.object()
            older = path.name == "realm_config.json"
            file.check_keys(data, _REALM_CONFIG_KEYS if older else _ROOT_KEYS)
            name = name or file.get(data, "name", str, None)
            if older:
                app_id = file.get(data, "app_id", str, None) or None
            env = env or file.get(data, "environment", str, "")
            if older and "custom_user_data_config" in data:
                self._older_custom_data = (file, file.get(data, "custom_user_data_config", Mapping, {}))
        if not name:
            raise self.file(present[0]).error("name", "the app's name is required")
        return name, app_id, env

    def _meta_app_id(self) -> str | None:
        path = self.root / ".mdb" / "meta.json"
        if not path.is_file():
            return None
        file = self.file(path)
        value = file.get(file.object(), "client_app_id", str, None)
        return value or None

    # ------------------------------------------------------------------ auth
    def _providers(self) -> ProvidersConfig:
        entries: list[tuple[AppFile, str, Mapping[str, Any]]] = []
        auth = self.root / "auth"
        if auth.is_dir():
            for file in self.json_files(auth):
                if file.path.name not in ("providers.json", "custom_user_data.json"):
                    raise self.unknown(file.path)
            providers = auth / "providers.json"
            if providers.is_file():
                file = self.file(providers)
                for key, entry in file.object().items():
                    if not isinstance(entry, Mapping):
                        raise file.error(key, "must be an object")
                    if entry.get("name", key) != key:
                        raise file.error(f"{key}.name", f"must be {key!r} (the provider's key)")
                    entries.append((file, key, entry))
        older = self.root / "auth_providers"
        if older.is_dir():
            for file in self.json_files(older):
                entries.append((file, "", file.object()))  # one provider per file: keys are top-level
        return providers_config(entries, self.secrets, self.warn)

    def _custom_data(self, services: tuple[str, ...]) -> tuple[CustomDataSettings, str | None]:
        path = self.root / "auth" / "custom_user_data.json"
        if path.is_file():
            file = self.file(path)
            return custom_data_settings(file, file.object(), services)
        if self._older_custom_data is not None:
            file, data = self._older_custom_data
            return custom_data_settings(file, data, services, "custom_user_data_config")
        return CustomDataSettings(enabled=False), None

    # ------------------------------------------------------------------ data sources and rules
    def _data_source_dirs(self) -> list[Path]:
        folder = self.root / "data_sources"
        if not folder.is_dir():
            return []
        dirs = []
        for path in self.entries(folder):
            if not path.is_dir():
                raise self.unknown(path, " (data_sources/ holds one folder per data source)")
            dirs.append(path)
        return dirs

    def _data_source_names(self) -> tuple[str, ...]:
        names: list[str] = []
        for folder in self._data_source_dirs():
            config = folder / "config.json"
            if not config.is_file():
                raise ConfigError(f"data_sources/{folder.name}/config.json: missing")
            file = self.file(config)
            data = file.object()
            file.check_keys(data, _DATA_SOURCE_KEYS)
            name = file.get(data, "name", str, folder.name)
            if name != folder.name:
                raise file.error("name", f"must be {folder.name!r} (the folder's name)")
            kind = file.get(data, "type", str, "mongodb-atlas")
            if kind == "datalake":
                self.warn(f"{file.name}: Data Federation sources are not served; {name!r} is left out")
                continue
            if kind != "mongodb-atlas":
                raise file.error("type", f"unknown data source type {kind!r}")
            file.get(data, "config", Mapping, {})
            names.append(name)
        return tuple(names)

    def _rules(self, services: tuple[str, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        from ..rules import RuleConfigError, parse_default_rule, parse_namespace_rule

        rules: list[Any] = []
        defaults: list[Any] = []
        for folder in self._data_source_dirs():
            if folder.name not in services:
                continue
            for path in self.entries(folder):
                if path.is_file():
                    if path.name == "default_rule.json":
                        file = self.file(path)
                        try:
                            defaults.append(
                                parse_default_rule(file.json(), service=folder.name, where=file.name)
                            )
                        except RuleConfigError as exc:
                            raise ConfigError(str(exc)) from None
                    elif path.name != "config.json":
                        raise self.unknown(path)
                    continue
                for coll in self.entries(path):
                    if not coll.is_dir():
                        raise self.unknown(coll, " (a database folder holds one folder per collection)")
                    rule = self._collection(
                        folder.name, path.name, coll, parse_namespace_rule, RuleConfigError
                    )
                    if rule is not None:
                        rules.append(rule)
        return tuple(rules), tuple(defaults)

    def _collection(
        self, service: str, database: str, folder: Path, parse: Any, error: type[Exception]
    ) -> Any:
        rule = None
        for path in self.entries(folder):
            file = self.file(path)
            if path.name == "rules.json":
                try:
                    rule = parse(
                        file.json(),
                        service=service,
                        database=database,
                        collection=folder.name,
                        where=file.name,
                    )
                except error as exc:
                    raise ConfigError(str(exc)) from None
            elif path.name == "schema.json":
                file.json()
                self.warn(f"{file.name}: schema validation is not enforced by this server")
            elif path.name == "relationships.json":
                if file.object():
                    self.warn(f"{file.name}: relationships are not resolved by this server")
            else:
                raise self.unknown(path)
        return rule

    # ------------------------------------------------------------------ functions
    def _functions(self) -> list[FunctionSettings]:
        folder = self.root / "functions"
        if not folder.is_dir():
            return []
        config = folder / "config.json"
        entries: list[tuple[AppFile, str, Any]] = []
        if config.is_file():
            file = self.file(config)
            data = file.json()
            if not isinstance(data, list):
                raise file.error(None, "must hold a JSON array of functions")
            entries = [(file, f"[{i}]", entry) for i, entry in enumerate(data)]
        sources = self._sources(folder)
        settings: list[FunctionSettings] = []
        listed: set[str] = set()
        for file, where, entry in entries:
            try:
                parsed = parse_function_settings(entry, where)
            except ConfigError as exc:
                raise file.error(None, str(exc)) from None
            if parsed.name in listed:
                raise file.error(f"{where}.name", f"function {parsed.name!r} is listed twice")
            listed.add(parsed.name)
            py, js = sources.pop(parsed.name, (None, None))
            if py is None and js is None:
                raise file.error(
                    f"{where}.name", f"function {parsed.name!r} has no source functions/{parsed.name}.py"
                )
            if py is None:
                assert js is not None
                self.warn(
                    f"functions/{js.relative_to(folder).as_posix()}: JavaScript is not run by this server; "
                    f"calling {parsed.name!r} fails until functions/{parsed.name}.py defines "
                    "main(context, *args)"
                )
            settings.append(attrs.evolve(parsed, source=py or js))
        for name, (py, js) in sorted(sources.items()):
            path = py or js
            assert path is not None
            raise ConfigError(
                f"functions/{path.relative_to(folder).as_posix()}: function {name!r} is not listed "
                "in functions/config.json"
            )
        return settings

    def _sources(self, folder: Path) -> dict[str, tuple[Path | None, Path | None]]:
        """Function name -> (Python source, JavaScript source), from ``functions/`` (nested: a/b)."""
        found: dict[str, tuple[Path | None, Path | None]] = {}

        def walk(directory: Path) -> None:
            for path in self.entries(directory):
                rel = path.relative_to(folder)
                if path.is_dir():
                    if directory == folder and path.name == "node_modules":
                        self.warn("functions/node_modules/: npm packages are not used (no JavaScript runs)")
                        continue
                    if path.name == "__pycache__":
                        continue
                    walk(path)
                elif directory == folder and path.name == "config.json":
                    continue
                elif directory == folder and path.name in ("package.json", "package-lock.json"):
                    self.warn(f"functions/{path.name}: npm dependencies are not installed (no JS runs)")
                elif path.suffix in (".py", ".js"):
                    name = rel.with_suffix("").as_posix()
                    check_function_name(name, f"functions/{rel.as_posix()}: the function name")
                    py, js = found.get(name, (None, None))
                    found[name] = (path, js) if path.suffix == ".py" else (py, path)
                else:
                    raise self.unknown(path, " (functions/ holds config.json, <name>.py and <name>.js)")

        walk(folder)
        return found

    # ------------------------------------------------------------------ values and environments
    def _values(self) -> dict[str, Any]:
        folder = self.root / "values"
        values: dict[str, Any] = {}
        if not folder.is_dir():
            return values
        for file in self.json_files(folder):
            data = file.object()
            file.check_keys(data, _VALUE_KEYS)
            name = file.get(data, "name", str, "")
            if not name:
                raise file.error("name", "the value's name is required")
            if name in values:
                raise file.error("name", f"value {name!r} is defined twice")
            if "value" not in data:
                raise file.error("value", "is required")
            if file.get(data, "from_secret", bool, False):
                secret = data["value"]
                if not isinstance(secret, str) or not secret:
                    raise file.error("value", "must name the secret (from_secret is true)")
                if secret not in self.secrets:
                    raise file.error(
                        "value",
                        f"secret {secret!r} was not given "
                        "(secrets are not exported: pass them with --secrets FILE)",
                    )
                values[name] = self.secrets[secret]
            else:
                values[name] = data["value"]
        return values

    def _environment(self, name: str, values: Mapping[str, Any]) -> EnvironmentSettings:
        folder = self.root / "environments"
        files = {f.path.stem: f for f in self.json_files(folder)} if folder.is_dir() else {}
        for stem, file in files.items():
            if stem not in _ENVIRONMENTS:
                raise file.error(None, f"unknown environment (one of {', '.join(_ENVIRONMENTS)})")
            data = file.object()
            file.check_keys(data, frozenset({"values"}))
            file.get(data, "values", Mapping, {})
        if name and name not in _ENVIRONMENTS:
            raise ConfigError(f"environment {name!r}: unknown (one of {', '.join(_ENVIRONMENTS[1:])})")
        chosen = files.get(name or "no-environment")
        env_values = dict(chosen.object().get("values", {})) if chosen is not None else {}
        return EnvironmentSettings(tag=name, values=env_values)

    # ------------------------------------------------------------------ triggers
    def _triggers(self) -> list[tuple[AppFile, AuthTrigger]]:
        folder = self.root / "triggers"
        triggers: list[tuple[AppFile, AuthTrigger]] = []
        if not folder.is_dir():
            return triggers
        for file in self.json_files(folder):
            data = file.object()
            kind = data.get("type")
            if kind != "AUTHENTICATION":
                if kind not in ("DATABASE", "SCHEDULED"):
                    raise file.error("type", f"unknown trigger type {kind!r}")
                if not file.get(data, "disabled", bool, False):
                    self.warn(f"{file.name}: {kind} triggers are not run by this server")
                continue
            try:
                trigger = parse_auth_trigger(data, "")
            except ConfigError as exc:
                raise file.error(None, str(exc)) from None
            if any(t.name == trigger.name for _f, t in triggers):
                raise file.error("name", f"trigger {trigger.name!r} is defined twice")
            triggers.append((file, trigger))
        return triggers

    def _check_references(
        self,
        functions: list[FunctionSettings],
        providers: ProvidersConfig,
        triggers: list[tuple[AppFile, AuthTrigger]],
    ) -> None:
        names = {f.name for f in functions}
        for file, trigger in triggers:
            if trigger.function not in names:
                raise file.error(
                    "function_name", f"function {trigger.function!r} is not in functions/config.json"
                )
        for hook in sorted(providers.hook_functions()):
            if hook not in names:
                raise ConfigError(
                    f"auth/providers.json: function {hook!r} (a provider hook) is not in "
                    "functions/config.json"
                )

    # ------------------------------------------------------------------ what is not served
    def _not_served(self, folder: Path, what: str) -> None:
        warned_dirs: set[Path] = set()
        for path in sorted(folder.rglob("*")):
            if path.is_dir() or any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            file = self.file(path)
            if path.suffix != ".json":
                # Static files and the like: one line for their folder, not one per file.
                if path.parent not in warned_dirs:
                    warned_dirs.add(path.parent)
                    self.warn(f"{self.file(path.parent).name}/: {what}")
                continue
            data = file.json()
            if _active(folder.name, path.name, data):
                self.warn(f"{file.name}: {what}")


def _active(folder: str, name: str, data: Any) -> bool:
    """Whether a known-but-unsupported file switches its feature on (else it is quietly inert)."""
    if folder == "graphql":
        return name not in ("config.json", "validation_settings.json")
    if folder == "hosting":
        return not (isinstance(data, Mapping) and data.get("enabled") is not True)
    if folder in ("https_endpoints", "http_endpoints"):
        if name == "data_api_config.json":
            return isinstance(data, Mapping) and data.get("disabled") is False
        return bool(data)
    if folder == "sync":
        return isinstance(data, Mapping) and data.get("state") not in (None, "", "disabled")
    return True
