"""Loading an ``appservices pull`` export: what maps where, what is reported, and every way a file
can be wrong (the error names the file and the key)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appusers.server import ConfigError, LocalServer, load_config
from appusers.server.appdir import read_app_dir

EXPORT = Path(__file__).with_name("appdir_export")
SECRETS = {"jwtSigningKey": "tasktracker-test-signing-key-0123456789", "mailerTokenSecret": "mailer-Zq9"}


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A writable copy of the fixture export."""
    target = tmp_path / "export"
    shutil.copytree(EXPORT, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def edit(root: Path, name: str, change: Callable[[Any], Any]) -> None:
    path = root / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def test_the_fixture_maps_onto_server_settings() -> None:
    loaded = read_app_dir(EXPORT, secrets=SECRETS)
    config = loaded.config
    assert config.app_id == "tasktracker-qwxyz"  # .mdb/meta.json's client_app_id
    providers = config.providers
    assert [
        p
        for p in (
            "anon-user",
            "local-userpass",
            "api-key",
            "custom-token",
            "custom-function",
            "oauth2-google",
            "oauth2-facebook",
            "oauth2-apple",
        )
        if providers.enabled(p)
    ] == ["anon-user", "local-userpass", "api-key", "custom-token", "custom-function"]
    userpass = providers.local_userpass
    assert userpass is not None and not userpass.auto_confirm
    assert (userpass.confirmation_function, userpass.reset_function) == ("confirmFunc", "resetFunc")
    assert providers.custom_function is not None and providers.custom_function.function == "authFunc"
    token = providers.custom_token
    assert token is not None and token.key == SECRETS["jwtSigningKey"] and token.audience == "tasktracker"
    assert SECRETS["jwtSigningKey"] not in repr(config)  # secrets stay out of reprs
    assert config.custom_data.enabled and (config.custom_data.database, config.custom_data.collection) == (
        "tracker",
        "profiles",
    )
    assert config.custom_data.on_user_creation_function == "onUserCreation"
    assert config.mongo_services == ("mongodb-atlas",)
    assert sorted((r.database, r.collection) for r in config.rules) == [
        ("tracker", "profiles"),
        ("tracker", "tasks"),
    ]
    assert [r.service for r in config.default_rules] == ["mongodb-atlas"]
    settings = {f.name: f for f in config.function_settings}
    assert settings["secretSauce"].private and settings["secretSauce"].run_as_system
    assert not settings["greet"].private and not settings["greet"].run_as_system
    assert settings["adminReport"].can_evaluate == {"%%user.data.email": {"%in": "%%values.admins"}}
    assert settings["utils/shout"].can_evaluate is None  # {} means every caller
    assert settings["utils/shout"].source == EXPORT / "functions" / "utils" / "shout.py"
    assert settings["legacyReport"].source == EXPORT / "functions" / "legacyReport.js"
    assert config.values == {
        "admins": ["boss@tasktracker.example.com"],
        "supportEmail": "help@tasktracker.example.com",
        "mailerToken": "mailer-Zq9",
    }
    assert config.environment.tag == "development"
    assert config.environment.values["apiBase"] == "https://dev.tasktracker.example.com"
    triggers = {t.name: t for t in config.triggers}
    assert set(triggers) == {
        "onUserCreated",
        "onLogin",
        "onUserDeleted",
        "flakyOnLogin",
        "slowOnLogin",
        "retiredOnLogin",
    }
    assert triggers["onLogin"].function == "recordAuthEvent" and triggers["onLogin"].operations == ("LOGIN",)
    assert triggers["onUserCreated"].operations == ("CREATE",) and triggers["retiredOnLogin"].disabled
    assert loaded.warnings == (
        "data_sources/mongodb-atlas/tracker/tasks/schema.json: "
        "schema validation is not enforced by this server",
        "functions/legacyReport.js: JavaScript is not run by this server; calling 'legacyReport' fails until "
        "functions/legacyReport.py defines main(context, *args)",
        "triggers/nightlyCleanup.json: SCHEDULED triggers are not run by this server",
    )


def test_app_id_precedence(export: Path) -> None:
    assert read_app_dir(export, secrets=SECRETS, app_id="chosen-id").config.app_id == "chosen-id"
    (export / ".mdb" / "meta.json").unlink()
    assert read_app_dir(export, secrets=SECRETS).config.app_id == "tasktracker"  # the name
    (export / "realm_config.json").write_text(
        json.dumps({"app_id": "tasktracker-older", "config_version": 20210101, "name": "tasktracker"})
    )
    assert read_app_dir(export, secrets=SECRETS).config.app_id == "tasktracker-older"


def test_environment_override(export: Path) -> None:
    env = read_app_dir(export, secrets=SECRETS, environment="production").config.environment
    assert (env.tag, env.values["apiBase"]) == ("production", "https://tasktracker.example.com")
    edit(export, "root_config.json", lambda d: {k: v for k, v in d.items() if k != "environment"})
    env = read_app_dir(export, secrets=SECRETS).config.environment
    assert (env.tag, dict(env.values)) == ("", {})  # no-environment.json


def test_older_realm_config_and_auth_providers_layout(export: Path) -> None:
    (export / "root_config.json").unlink()
    (export / "auth" / "custom_user_data.json").unlink()
    (export / "realm_config.json").write_text(
        json.dumps(
            {
                "app_id": "legacy-abcde",
                "config_version": 20210101,
                "name": "legacy",
                "location": "IE",
                "deployment_model": "LOCAL",
                "security": {},
                "custom_user_data_config": {
                    "enabled": True,
                    "mongo_service_name": "mongodb-atlas",
                    "database_name": "legacy",
                    "collection_name": "users",
                    "user_id_field": "uid",
                },
            }
        )
    )
    providers = json.loads((export / "auth" / "providers.json").read_text())
    (export / "auth" / "providers.json").unlink()
    (export / "auth_providers").mkdir()
    for name in ("anon-user", "custom-function", "local-userpass"):
        (export / "auth_providers" / f"{name}.json").write_text(json.dumps(providers[name]))
    config = read_app_dir(export, secrets=SECRETS).config
    assert config.app_id == "tasktracker-qwxyz"  # .mdb/meta.json still wins
    assert config.custom_data.collection == "users" and config.custom_data.user_id_field == "uid"
    assert config.providers.enabled("local-userpass") and not config.providers.enabled("custom-token")


def test_inert_and_active_unsupported_parts(export: Path) -> None:
    (export / "hosting" / "config.json").write_text('{"enabled": true}')
    (export / "https_endpoints" / "config.json").write_text(
        '[{"route": "/hook", "http_method": "POST", "function_name": "greet"}]'
    )
    (export / "sync" / "config.json").write_text('{"type": "flexible", "state": "enabled"}')
    (export / "graphql" / "custom_resolvers").mkdir()
    (export / "graphql" / "custom_resolvers" / "query_top.json").write_text('{"field_name": "top"}')
    (export / "data_sources" / "mongodb-atlas" / "tracker" / "profiles" / "relationships.json").write_text(
        '{"owner": {"ref": "#/relationship/mongodb-atlas/tracker/tasks", "source_key": "owner_id",'
        ' "foreign_key": "_id", "is_list": false}}'
    )
    (export / "data_sources" / "lake").mkdir()
    (export / "data_sources" / "lake" / "config.json").write_text(
        '{"name": "lake", "type": "datalake", "config": {"dataLakeName": "Lake0"}}'
    )
    (export / "functions" / "package.json").write_text('{"dependencies": {}}')
    (export / "hosting" / "files").mkdir()
    for name in ("index.html", "app.js", "style.css"):
        (export / "hosting" / "files" / name).write_text("x")
    warnings = read_app_dir(export, secrets=SECRETS).warnings
    for expected in (
        "hosting/config.json: static hosting is not served",
        "https_endpoints/config.json: HTTPS endpoints are not served",
        "sync/config.json: Device Sync is not served",
        "graphql/custom_resolvers/query_top.json: the GraphQL API is not served",
        "data_sources/mongodb-atlas/tracker/profiles/relationships.json: relationships are not resolved",
        "data_sources/lake/config.json: Data Federation sources are not served",
        "functions/package.json: npm dependencies are not installed",
        "hosting/files/: static hosting is not served",
    ):
        assert any(w.startswith(expected) for w in warnings), (expected, warnings)
    assert sum("hosting/files" in w for w in warnings) == 1


def _set(path: list[str], value: Any) -> Callable[[Any], Any]:
    def change(data: Any) -> Any:
        target = data
        for part in path[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is _DELETE:
            del target[path[-1]]
        elif isinstance(target, list) and int(path[-1]) == len(target):
            target.append(value)
        else:
            target[int(path[-1]) if isinstance(target, list) else path[-1]] = value
        return data

    return change


_DELETE = object()

#: (file, key path to change, new value, expected text in the error)
JSON_CASES = [
    ("root_config.json", ["colour"], "blue", "root_config.json: colour: unknown key"),
    ("root_config.json", ["name"], 5, "root_config.json: name: must be of type str"),
    ("root_config.json", ["environment"], "staging", "environment 'staging': unknown"),
    (
        "auth/providers.json",
        ["oauth2-myspace"],
        {"name": "oauth2-myspace", "type": "oauth2-myspace"},
        "auth/providers.json: oauth2-myspace.type: unknown provider type 'oauth2-myspace'",
    ),
    (
        "auth/providers.json",
        ["local-userpass", "config", "autoconfirm"],
        True,
        "auth/providers.json: local-userpass.config.autoconfirm: unknown key",
    ),
    (
        "auth/providers.json",
        ["local-userpass", "config", "autoConfirm"],
        "yes",
        "auth/providers.json: local-userpass.config.autoConfirm: must be of type bool",
    ),
    (
        "auth/providers.json",
        ["local-userpass", "config", "confirmationFunctionName"],
        "",
        "auth/providers.json: local-userpass.config.confirmationFunctionName: a function name is required",
    ),
    (
        "auth/providers.json",
        ["local-userpass", "disabled"],
        "no",
        "auth/providers.json: local-userpass.disabled: must be of type bool",
    ),
    (
        "auth/providers.json",
        ["anon-user", "name"],
        "anonymous",
        "auth/providers.json: anon-user.name: must be 'anon-user'",
    ),
    (
        "auth/providers.json",
        ["custom-token", "config", "useJWKURI"],
        True,
        "auth/providers.json: custom-token.config.useJWKURI: keys from a JWK URI cannot be fetched",
    ),
    (
        "auth/providers.json",
        ["custom-token", "config", "signingAlgorithm"],
        "none",
        "auth/providers.json: custom-token.config.signingAlgorithm: must be HS256 or RS256",
    ),
    (
        "auth/providers.json",
        ["custom-token", "secret_config", "signingKeys"],
        ["otherKey"],
        "auth/providers.json: custom-token.secret_config.signingKeys: secret 'otherKey' was not given",
    ),
    (
        "auth/providers.json",
        ["custom-token", "metadata_fields", "0", "claim"],
        "x",
        "auth/providers.json: custom-token.metadata_fields[0].claim: unknown key",
    ),
    (
        "auth/providers.json",
        ["custom-function", "config", "authFunctionName"],
        "nope",
        "auth/providers.json: function 'nope' (a provider hook) is not in functions/config.json",
    ),
    (
        "auth/custom_user_data.json",
        ["mongo_service_name"],
        "mongodb-elsewhere",
        "auth/custom_user_data.json: mongo_service_name: no data source named 'mongodb-elsewhere'",
    ),
    (
        "auth/custom_user_data.json",
        ["collection_name"],
        _DELETE,
        "auth/custom_user_data.json: collection_name: is required",
    ),
    (
        "auth/custom_user_data.json",
        ["on_user_creation_function_name"],
        "ghost",
        "auth/custom_user_data.json: on_user_creation_function_name: function 'ghost' is not in",
    ),
    (
        "auth/custom_user_data.json",
        ["user_id_column"],
        "uid",
        "auth/custom_user_data.json: user_id_column: unknown key",
    ),
    (
        "data_sources/mongodb-atlas/config.json",
        ["type"],
        "postgres",
        "data_sources/mongodb-atlas/config.json: type: unknown data source type 'postgres'",
    ),
    (
        "data_sources/mongodb-atlas/config.json",
        ["name"],
        "mongodb-other",
        "data_sources/mongodb-atlas/config.json: name: must be 'mongodb-atlas'",
    ),
    (
        "data_sources/mongodb-atlas/tracker/tasks/rules.json",
        ["roles", "0", "readd"],
        True,
        "data_sources/mongodb-atlas/tracker/tasks/rules.json.roles[0]",
    ),
    (
        "data_sources/mongodb-atlas/tracker/tasks/rules.json",
        ["roles", "1", "apply_when"],
        {"%%usr.id": 1},
        "data_sources/mongodb-atlas/tracker/tasks/rules.json.roles[1].apply_when",
    ),
    (
        "data_sources/mongodb-atlas/tracker/tasks/rules.json",
        ["database"],
        "elsewhere",
        "data_sources/mongodb-atlas/tracker/tasks/rules.json.database",
    ),
    (
        "data_sources/mongodb-atlas/default_rule.json",
        ["roles", "0", "insert"],
        "always",
        "data_sources/mongodb-atlas/default_rule.json.roles[0].insert",
    ),
    ("functions/config.json", ["0", "colour"], "blue", "functions/config.json: [0].colour: unknown key"),
    (
        "functions/config.json",
        ["0", "private"],
        "yes",
        "functions/config.json: [0].private must be true or false",
    ),
    (
        "functions/config.json",
        ["3", "run_as_user_id"],
        "6650a1f0c2e4b0a1b2c3d4e5",
        "functions/config.json: [3].run_as_user_id: running as a fixed or scripted user is not supported",
    ),
    (
        "functions/config.json",
        ["7", "can_evaluate"],
        {"%%usr.id": "x"},
        "functions/config.json: [7].can_evaluate",
    ),
    (
        "functions/config.json",
        ["3", "name"],
        "../escape",
        "functions/config.json: [3].name must be a function name",
    ),
    (
        "functions/config.json",
        ["3", "name"],
        "authFunc",
        "functions/config.json: [3].name: function 'authFunc' is listed twice",
    ),
    (
        "functions/config.json",
        ["14"],
        {"name": "ghost"},
        "functions/config.json: [14].name: function 'ghost' has no source functions/ghost.py",
    ),
    ("values/admins.json", ["name"], _DELETE, "values/admins.json: name: the value's name is required"),
    (
        "values/admins.json",
        ["name"],
        "supportEmail",
        "values/supportEmail.json: name: value 'supportEmail' is defined twice",
    ),
    ("values/admins.json", ["value"], _DELETE, "values/admins.json: value: is required"),
    ("values/admins.json", ["secret"], True, "values/admins.json: secret: unknown key"),
    (
        "values/mailerToken.json",
        ["value"],
        "unknownSecret",
        "values/mailerToken.json: value: secret 'unknownSecret' was not given",
    ),
    (
        "values/mailerToken.json",
        ["from_secret"],
        "true",
        "values/mailerToken.json: from_secret: must be of type bool",
    ),
    (
        "environments/development.json",
        ["values"],
        [1],
        "environments/development.json: values: must be of type",
    ),
    ("environments/development.json", ["vars"], {}, "environments/development.json: vars: unknown key"),
    (
        "triggers/onLogin.json",
        ["type"],
        "WEBHOOK",
        "triggers/onLogin.json: type: unknown trigger type 'WEBHOOK'",
    ),
    (
        "triggers/onLogin.json",
        ["config", "operation_type"],
        "UPDATE",
        "triggers/onLogin.json: config.operation_type must be one of CREATE, LOGIN, DELETE",
    ),
    (
        "triggers/onLogin.json",
        ["config", "operation_type"],
        [],
        "triggers/onLogin.json: config.operation_type must be one of CREATE, LOGIN, DELETE",
    ),
    (
        "triggers/onLogin.json",
        ["config", "providers"],
        ["myspace"],
        "triggers/onLogin.json: config.providers: unknown provider 'myspace'",
    ),
    ("triggers/onLogin.json", ["config", "providers"], [], "triggers/onLogin.json: config.providers must be"),
    (
        "triggers/onLogin.json",
        ["config", "database"],
        "tracker",
        "triggers/onLogin.json: config.database: unknown key",
    ),
    (
        "triggers/onLogin.json",
        ["function_name"],
        "ghost",
        "triggers/onLogin.json: function_name: function 'ghost' is not in functions/config.json",
    ),
    (
        "triggers/onLogin.json",
        ["event_processors"],
        {"FUNCTION": {"config": {"function_name": "greet"}}},
        "triggers/onLogin.json: give either function_name or event_processors, not both",
    ),
    (
        "triggers/onUserCreated.json",
        ["event_processors"],
        {"AWS_EVENTBRIDGE": {"config": {}}},
        "triggers/onUserCreated.json: event_processors must be",
    ),
    ("triggers/onUserCreated.json", ["name"], "bad name!", "triggers/onUserCreated.json: name must be 1-64"),
    (
        "triggers/onUserCreated.json",
        ["name"],
        "onLogin",
        "triggers/onUserCreated.json: name: trigger 'onLogin'",
    ),
    (
        "triggers/onUserCreated.json",
        ["disabled"],
        0,
        "triggers/onUserCreated.json: disabled must be true or false",
    ),
]


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"), JSON_CASES, ids=[f"{c[0]}:{'.'.join(c[1])}" for c in JSON_CASES]
)
def test_malformed_json_names_file_and_key(
    export: Path, name: str, path: list[str], value: Any, expected: str
) -> None:
    edit(export, name, _set(path, value))
    with pytest.raises(ConfigError) as failed:
        read_app_dir(export, secrets=SECRETS)
    assert expected in str(failed.value)


#: (file to write, its text, expected text in the error)
FILE_CASES = [
    ("root_config.json", "{not json", "root_config.json: not valid JSON"),
    ("root_config.json", "[]", "root_config.json: must hold a JSON object"),
    (
        "root_config.json",
        '{"name": "a", "name": "b"}',
        "root_config.json: not valid JSON: key 'name' appears twice",
    ),
    ("auth/providers.json", '{"anon-user": []}', "auth/providers.json: anon-user: must be an object"),
    ("auth/users.json", "{}", "auth/users.json: unknown file"),
    ("notes.txt", "hello", "notes.txt: unknown file"),
    (
        "data_sources/mongodb-atlas/tracker/tasks/indexes.json",
        "{}",
        "data_sources/mongodb-atlas/tracker/tasks/indexes.json: unknown file",
    ),
    (
        "data_sources/mongodb-atlas/tracker/readme.txt",
        "x",
        "data_sources/mongodb-atlas/tracker/readme.txt: unknown",
    ),
    (
        "data_sources/mongodb-atlas/default_rule.json",
        "{",
        "data_sources/mongodb-atlas/default_rule.json: not valid",
    ),
    ("data_sources/stray.json", "{}", "data_sources/stray.json: unknown file"),
    ("functions/config.json", "{}", "functions/config.json: must hold a JSON array"),
    (
        "functions/orphan.py",
        "def main(context):\n    return 1\n",
        "functions/orphan.py: function 'orphan' is not listed in functions/config.json",
    ),
    ("functions/notes.md", "x", "functions/notes.md: unknown file"),
    ("functions/bad name.py", "", "functions/bad name.py: the function name must be a function name"),
    ("values/admins.json", "[1]", "values/admins.json: must hold a JSON object"),
    ("values/readme.txt", "x", "values/readme.txt: unknown file"),
    ("environments/staging.json", '{"values": {}}', "environments/staging.json: unknown environment"),
    ("triggers/broken.json", "{", "triggers/broken.json: not valid JSON"),
    ("services/mongodb-atlas/config.json", "{}", "services/: the older services layout"),
]


@pytest.mark.parametrize(("name", "text", "expected"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_malformed_or_unknown_files_are_named(export: Path, name: str, text: str, expected: str) -> None:
    target = export / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    with pytest.raises(ConfigError) as failed:
        read_app_dir(export, secrets=SECRETS)
    assert expected in str(failed.value)


def test_missing_pieces(export: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="app directory not found"):
        read_app_dir(tmp_path / "nowhere")
    (export / "root_config.json").unlink()
    with pytest.raises(ConfigError, match=r"no root_config\.json"):
        read_app_dir(export, secrets=SECRETS)


def test_missing_data_source_config(export: Path) -> None:
    (export / "data_sources" / "mongodb-atlas" / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"data_sources/mongodb-atlas/config.json: missing"):
        read_app_dir(export, secrets=SECRETS)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def handler(context):\n    return 1\n", "main: the source of function 'greet' must define main"),
        ("import no_such_module_xyz\n", "failed to import: ModuleNotFoundError"),
        ("main = 3\n", "must define main(context, *args)"),
    ],
)
async def test_function_sources_that_cannot_run_stop_the_start(
    export: Path, tmp_path: Path, source: str, expected: str
) -> None:
    (export / "functions" / "greet.py").write_text(source)
    config = read_app_dir(export, secrets=SECRETS).config
    with pytest.raises(ConfigError) as failed:
        async with LocalServer(config=config, data_dir=tmp_path / "data"):
            pass
    assert expected in str(failed.value)


# ---------------------------------------------------------------------------------- the TOML form

TOML_BAD = [
    (
        "[[functions.config]]\nname = 'sum'\nprivate = 'yes'\n",
        "functions.config[0].private must be true or false",
    ),
    ("[[functions.config]]\nname = 'sum'\ncolour = 1\n", "functions.config[0].colour: unknown key"),
    (
        "[[functions.config]]\nname = 'sum'\n[[functions.config]]\nname = 'sum'\n",
        "functions.config[1].name: 'sum' is listed twice",
    ),
    (
        "[[functions.config]]\nname = 'sum'\ncan_evaluate = { '%%nope' = 1 }\n",
        "functions.config[0].can_evaluate",
    ),
    ("values = 3\n", "[values] must be a table"),
    ("[environment]\ntag = 5\n", "environment.tag must be a string"),
    ("[environment]\nname = 'x'\n", "environment.name: unknown key"),
    (
        "[[triggers]]\nname = 't'\ntype = 'DATABASE'\nfunction_name = 'sum'\nconfig = {}\n",
        'triggers[0].type must be "AUTHENTICATION"',
    ),
    (
        "[[triggers]]\nname = 't'\ntype = 'AUTHENTICATION'\nfunction_name = 'sum'\n"
        "config = { operation_type = 'LOGOUT', providers = ['anon-user'] }\n",
        "triggers[0].config.operation_type",
    ),
    (
        "[[triggers]]\nname = 't'\ntype = 'AUTHENTICATION'\nconfig = { operation_type = 'LOGIN', providers = "
        "['anon-user'] }\n",
        "triggers[0].function_name must be a function name",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TOML_BAD, ids=[str(i) for i in range(len(TOML_BAD))])
def test_toml_function_settings_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    assert expected in str(failed.value)


async def test_toml_names_an_undefined_function(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text("[functions]\nmodule = 'demo'\n[[functions.config]]\nname = 'ghost'\n")
    with pytest.raises(ConfigError, match="no function named 'ghost'"):
        async with LocalServer(config=load_config(path), data_dir=tmp_path / "data"):
            pass
    path.write_text(
        "[functions]\nmodule = 'demo'\n[[triggers]]\nname = 't'\ntype = 'AUTHENTICATION'\n"
        "function_name = 'ghost'\nconfig = { operation_type = 'LOGIN', providers = ['anon-user'] }\n"
    )
    with pytest.raises(ConfigError, match="trigger 't': function 'ghost' is not defined"):
        async with LocalServer(config=load_config(path), data_dir=tmp_path / "data2"):
            pass
