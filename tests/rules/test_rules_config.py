"""Rule configuration: the TOML ``[[rules]]``/``[default_rule]`` form and the exported JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appusers.server import ServerConfig, load_config
from appusers.server._config import ConfigError, demo_rules, read_default_rule, read_namespace_rule
from appusers.server.rules import Role


def _toml(tmp_path: Path, text: str) -> ServerConfig:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path)


def test_demo_settings_ship_owner_rules() -> None:
    config = load_config(None)
    assert (config.rules, config.default_rules) == tuple(demo_rules().values())
    (custom,) = config.rules
    assert (custom.database, custom.collection) == ("appusers", "custom_data")
    assert custom.roles[0].apply_when == {"user_id": "%%user.id"}
    assert config.default_rules[0].roles[0].apply_when == {"owner_id": "%%user.id"}


def test_toml_without_rules_gets_demo_rules_and_empty_array_denies_all(tmp_path: Path) -> None:
    assert _toml(tmp_path, 'app_id = "x"\n').default_rules == ServerConfig.demo().default_rules
    config = _toml(tmp_path, "rules = []\n")
    assert config.rules == () and config.default_rules == ()


def test_toml_rules_and_default_rule(tmp_path: Path) -> None:
    config = _toml(
        tmp_path,
        """
[[rules]]
database = "private"
collection = "notes"
service = "mongodb-atlas"
[[rules.roles]]
name = "owner"
apply_when = { owner_id = "%%user.id" }
fields = { secret = { read = true, write = false } }
additional_fields = { read = true, write = true }
[[rules.filters]]
name = "mine"
query = { owner_id = "%%user.id" }
projection = { internal = 0 }

[default_rule]
[[default_rule.roles]]
name = "readAll"
apply_when = {}
read = true
""",
    )
    (rule,) = config.rules
    assert rule.service == "mongodb-atlas"
    role = rule.roles[0]
    assert role.fields["secret"].read is True and role.fields["secret"].write is False
    assert role.additional_fields is not None and role.additional_fields.write is True
    assert role.insert is True and role.write is None
    assert rule.filters[0].projection == {"internal": 0}
    assert config.default_rules[0].roles == (Role(name="readAll", read=True),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules = 5\n", "rules must be an array"),
        ("[[rules]]\ncollection = 'c'\n", "rules[0].database is required"),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\nroles = [{ apply_when = {} }]\n",
            "rules[0].roles[0].name",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\nroles = [{ name = 'r', raed = true }]\n",
            "rules[0].roles[0].raed is not a known key",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\nroles = [{ name = 'r', read = 'yes' }]\n",
            "rules[0].roles[0].read must be true, false or an expression",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n"
            "roles = [{ name = 'r', apply_when = { '%%user.id' = { '$regex' = 'x' } } }]\n",
            "rules[0].roles[0].apply_when: %%user.id.$regex is not a known operator",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n"
            "roles = [{ name = 'r', apply_when = { '%%usr.id' = 1 } }]\n",
            "unknown expansion '%%usr.id'",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\nroles = [{ name = 'r' }, { name = 'r' }]\n",
            "rules[0].roles[1].name 'r' is not unique",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n"
            "roles = [{ name = 'r', fields = { a = { read = true, wirte = true } } }]\n",
            "rules[0].roles[0].fields.a.wirte is not a known key",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n"
            "filters = [{ name = 'f', projection = { a = 1, b = 0 } }]\n",
            "rules[0].filters[0].projection mixes inclusion and exclusion",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n[[rules]]\ndatabase='d'\ncollection='c'\n",
            "rules[1] repeats the rule for d.c",
        ),
        ("[default_rule]\nroles = [{ name = 'r', insert = [] }]\n", "default_rule.roles[0].insert"),
        ("[default_rule]\nflters = []\n", "default_rule.flters is not a known key"),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n"
            "filters = [{ name = 'f', query = { owner_id = '%%nosuch.id' } }]\n",
            "rules[0].filters[0].query.owner_id: unknown expansion '%%nosuch.id'",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n"
            "filters = [{ name = 'f', query = { owner_id = { '$in' = ['%%user.id', '%%usr.id'] } } }]\n",
            "rules[0].filters[0].query.owner_id.$in[1]: unknown expansion '%%usr.id'",
        ),
        (
            "[[rules]]\ndatabase='d'\ncollection='c'\n"
            "filters = [{ name = 'f', query = { owner_id = { '%function' = { nme = 'f' } } } }]\n",
            "rules[0].filters[0].query.owner_id.%function needs a 'name' string",
        ),
    ],
)
def test_malformed_rules_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _toml(tmp_path, text)
    assert message in str(info.value)


def test_exported_json_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            {
                "collection": "notes",
                "database": "private",
                "roles": [
                    {
                        "name": "readAndWriteAll",
                        "apply_when": {},
                        "document_filters": {"read": True, "write": True},
                        "insert": True,
                        "delete": True,
                        "search": True,
                        "read": True,
                        "write": True,
                    }
                ],
            }
        )
    )
    rule = read_namespace_rule(rules, service="mongodb-atlas")
    assert (rule.service, rule.database, rule.collection) == ("mongodb-atlas", "private", "notes")
    assert rule.roles[0].document_filters is not None
    # The export's directory path names the namespace; a disagreeing file is an error naming it.
    with pytest.raises(ConfigError, match=r"rules\.json: rules\.json\.collection is 'notes' but"):
        read_namespace_rule(rules, database="private", collection="other")
    default = tmp_path / "default_rule.json"
    default.write_text(json.dumps({"roles": [{"name": "r", "apply_when": {"%%true": True}}]}))
    assert read_default_rule(default, service="mongodb-atlas").roles[0].name == "r"
    default.write_text(json.dumps({"roles": [{"name": "r", "apply_when": {"%bogus": 1}}]}))
    with pytest.raises(
        ConfigError, match=r"default_rule\.json\.roles\[0\]\.apply_when: %bogus is not a known"
    ):
        read_default_rule(default)
    default.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read rule file"):
        read_default_rule(default)
