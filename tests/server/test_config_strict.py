"""Strict settings files: a misspelt table or key, or a value of the wrong type, is an error naming it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from appusers.server import ConfigError, load_config
from appusers.server._config_schema import SCHEMA

EXAMPLE = Path(__file__).resolve().parents[2] / "server" / "example.toml"


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tokens]\naccess_lifetme = 60\n",
         "tokens.access_lifetme: unknown key; did you mean access_lifetime?"),
        ("[custom_data_DISABLED]\nenabled = false\n",
         "[custom_data_DISABLED]: unknown table; did you mean custom_data?"),
        ("app_idd = 'x'\n", "app_idd: unknown key; did you mean app_id?"),
        ("[providers.local-userpass]\nauto_confirmm = true\n",
         "providers.local-userpass.auto_confirmm: unknown key; did you mean auto_confirm?"),
        ("[providers.oauth2-gogle]\nclient_id = 'x'\n",
         "[providers.oauth2-gogle]: unknown table; did you mean oauth2-google?"),
        ("[[providers.api-key.server_keys]]\nname = 'ci'\nkey = 'k'\nkey_sha = 'x'\n",
         "providers.api-key.server_keys[0].key_sha: unknown key; did you mean key_sha256?"),
        ("[throttle]\nbase_dealy = 2.0\n", "throttle.base_dealy: unknown key; did you mean base_delay?"),
        ("[[functions.config]]\nname = 'sum'\nprivat = true\n", "did you mean private?"),
        ("[environment]\ntga = 'x'\n", "unknown key"),
        ("[[rules]]\ndatabase = 'd'\ncollection = 'c'\nrols = []\n",
         "rules[0].rols is not a known key; did you mean roles?"),
    ],
)
def test_an_unknown_table_or_key_is_named_with_its_closest_match(
    tmp_path: Path, text: str, message: str
) -> None:
    assert message in _load(tmp_path, text)


def test_an_unknown_name_without_a_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    message = _load(tmp_path, "[zzzz]\nq = 1\n")
    assert message.startswith("[zzzz]: unknown table (known: ")
    assert "tokens" in message and "providers" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app_id = 5\n", "app_id must be a string, not an integer"),
        ("[tokens]\naccess_lifetime = '1800'\n", "tokens.access_lifetime must be an integer, not a string"),
        ("[throttle]\nbase_delay = 'x'\n", "throttle.base_delay must be a number, not a string"),
        ("[throttle]\nenabled = 1\n", "throttle.enabled must be true or false, not an integer"),
        ("[custom_data]\nenabled = 'yes'\n", "custom_data.enabled must be true or false, not a string"),
        ("[http]\ntrusted_proxies = '10.0.0.0/8'\n", "http.trusted_proxies must be an array, not a string"),
        ("tokens = 5\n", "[tokens] must be a table, not an integer"),
        ("[providers]\nanon-user = true\n", "[providers.anon-user] must be a table, not true or false"),
    ],
)
def test_a_wrong_type_names_the_expected_one(tmp_path: Path, text: str, message: str) -> None:
    assert message in _load(tmp_path, text)


def test_every_table_and_key_of_the_example_is_known() -> None:
    # The example documents every setting (most of them commented out): uncommented, it must load.
    load_config(EXAMPLE)
    raw = tomllib.loads(EXAMPLE.read_text())
    assert set(raw) <= set(SCHEMA)


def test_an_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    assert "cannot read config" in _load(tmp_path, "not toml [")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00app_id")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(binary)
    with pytest.raises(ConfigError, match=r"cannot read config .*: Is a directory"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "missing.toml")
