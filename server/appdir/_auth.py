"""``auth/providers.json`` (and the older ``auth_providers/*.json``) and ``auth/custom_user_data.json``.

Each provider's ``config`` is mapped where it maps onto this server's settings; keys that
only steer the real service's emails or redirects are accepted and have no effect here;
any other key is an error naming the file and the key. Secrets (a custom-token signing
key) are not part of an export: they come from the secrets the loader is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._config import (
    ApiKeySettings,
    CustomDataSettings,
    CustomFunctionSettings,
    CustomTokenSettings,
    FacebookSettings,
    MetadataField,
    OpenIdSettings,
    ProvidersConfig,
    UserpassSettings,
)
from ._files import AppFile

__all__ = ["PROVIDER_KEYS", "custom_data_settings", "providers_config"]

#: Keys of one provider entry.
PROVIDER_KEYS = frozenset(
    {
        "name",
        "type",
        "disabled",
        "config",
        "secret_config",
        "metadata_fields",
        "redirect_uris",
        "domain_restrictions",
        "id",
    }
)
_USERPASS_KEYS = frozenset(
    {
        "autoConfirm",
        "emailConfirmationUrl",
        "confirmEmailSubject",
        "runConfirmationFunction",
        "confirmationFunctionName",
        "confirmationFunctionId",
        "resetPasswordUrl",
        "resetPasswordSubject",
        "runResetFunction",
        "resetFunctionName",
        "resetFunctionId",
    }
)
_CONFIG_KEYS: Mapping[str, frozenset[str]] = {
    "anon-user": frozenset(),
    "api-key": frozenset(),
    "local-userpass": _USERPASS_KEYS,
    "custom-token": frozenset({"audience", "requireAnyAudience", "signingAlgorithm", "useJWKURI", "jwkURI"}),
    "custom-function": frozenset({"authFunctionName", "authFunctionId"}),
    "oauth2-google": frozenset({"clientId", "openId"}),
    "oauth2-apple": frozenset({"clientId"}),
    "oauth2-facebook": frozenset({"clientId"}),
}
_SECRET_KEYS: Mapping[str, frozenset[str]] = {
    "custom-token": frozenset({"signingKeys", "signingKey"}),
    "oauth2-google": frozenset({"clientSecret"}),
    "oauth2-apple": frozenset({"clientSecret"}),
    "oauth2-facebook": frozenset({"clientSecret"}),
}


class _Entry:
    """One provider entry of a file, with key paths for messages."""

    def __init__(self, file: AppFile, where: str, data: Mapping[str, Any]):
        self.file = file
        self.where = where
        self.data = data
        file.check_keys(data, PROVIDER_KEYS, where)
        provider = data.get("type", data.get("name"))
        if provider not in _CONFIG_KEYS:
            raise file.error(self.at("type"), f"unknown provider type {provider!r}")
        self.type: str = provider
        self.config: Mapping[str, Any] = file.get(data, "config", Mapping, {}, where)
        file.check_keys(self.config, _CONFIG_KEYS[provider], self.at("config"))
        self.secret_config: Mapping[str, Any] = file.get(data, "secret_config", Mapping, {}, where)
        file.check_keys(self.secret_config, _SECRET_KEYS.get(provider, frozenset()), self.at("secret_config"))
        self.disabled: bool = file.get(data, "disabled", bool, False, where)

    def at(self, key: str) -> str:
        """The key path of ``key`` (dotted) inside this entry."""
        return f"{self.where}.{key}" if self.where else key

    def key(self, key: str) -> str:
        return self.at(f"config.{key}")

    def config_value(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        return self.file.get(self.config, key, kind, default, self.at("config"))

    def function_name(self, run_key: str | None, name_key: str) -> str | None:
        """The function a ``run...`` switch turns on (``run_key`` None: always on)."""
        if run_key is not None and not self.config_value(run_key, bool, False):
            return None
        name = self.config_value(name_key, str, "")
        if not name:
            raise self.file.error(self.key(name_key), "a function name is required")
        return str(name)


def providers_config(
    entries: list[tuple[AppFile, str, Mapping[str, Any]]],
    secrets: Mapping[str, str],
    warn: Callable[[str], None],
) -> ProvidersConfig:
    """Map the provider entries (file, key path, entry) onto :class:`ProvidersConfig`."""
    on: dict[str, _Entry] = {}
    for file, where, data in entries:
        entry = _Entry(file, where, data)
        if entry.type in on:
            raise file.error(where or None, f"provider {entry.type!r} is configured twice")
        if not entry.disabled:
            on[entry.type] = entry
    up, ct, cf = on.get("local-userpass"), on.get("custom-token"), on.get("custom-function")
    for provider in ("oauth2-google", "oauth2-apple"):
        if provider in on:
            warn(
                f"{on[provider].file.name}: {provider}: id_token logins need a JWKS file, which an export "
                "does not contain; they are refused until one is configured"
            )
    if "oauth2-facebook" in on:
        warn(
            f"{on['oauth2-facebook'].file.name}: oauth2-facebook: this server cannot ask Facebook; "
            "logins are checked by the function verify_facebook(context, accessToken) if you add one"
        )
    return ProvidersConfig(
        anon_user="anon-user" in on,
        local_userpass=None if up is None else _userpass(up),
        api_key=ApiKeySettings() if "api-key" in on else None,
        custom_token=None if ct is None else _custom_token(ct, secrets),
        custom_function=None
        if cf is None
        else CustomFunctionSettings(function=str(cf.function_name(None, "authFunctionName"))),
        oauth2_google=_openid(on.get("oauth2-google")),
        oauth2_facebook=FacebookSettings() if "oauth2-facebook" in on else None,
        oauth2_apple=_openid(on.get("oauth2-apple")),
    )


def _userpass(entry: _Entry) -> UserpassSettings:
    return UserpassSettings(
        auto_confirm=entry.config_value("autoConfirm", bool, False),
        confirmation_function=entry.function_name("runConfirmationFunction", "confirmationFunctionName"),
        reset_function=entry.function_name("runResetFunction", "resetFunctionName"),
    )


def _openid(entry: _Entry | None) -> OpenIdSettings | None:
    if entry is None:
        return None
    client_id = entry.config_value("clientId", str, None)
    return OpenIdSettings(client_id=client_id or None)


def _custom_token(entry: _Entry, secrets: Mapping[str, str]) -> CustomTokenSettings:
    file = entry.file
    if entry.config_value("useJWKURI", bool, False):
        raise file.error(
            entry.key("useJWKURI"),
            "keys from a JWK URI cannot be fetched by this server; configure the signing key as a secret",
        )
    algorithm = entry.config_value("signingAlgorithm", str, "HS256")
    if algorithm not in ("HS256", "RS256"):
        raise file.error(entry.key("signingAlgorithm"), "must be HS256 or RS256")
    audience = entry.config_value("audience", (str, list), None)
    if isinstance(audience, list):
        if len(audience) > 1 or not all(isinstance(a, str) for a in audience):
            raise file.error(entry.key("audience"), "only one audience (a string) is supported")
        audience = audience[0] if audience else None
    where = entry.at("secret_config")
    names = file.get(entry.secret_config, "signingKeys", list, None, where)
    if names is None:
        single = file.get(entry.secret_config, "signingKey", str, None, where)
        names = [single] if single is not None else []
    if not names or not all(isinstance(n, str) and n for n in names):
        raise file.error(f"{where}.signingKeys", "the signing key's secret name is required")
    key = next((secrets[n] for n in names if n in secrets), None)
    if key is None:
        raise file.error(
            f"{where}.signingKeys",
            f"secret {names[0]!r} was not given (secrets are not exported: pass them with --secrets FILE)",
        )
    return CustomTokenSettings(
        algorithm=algorithm,
        key=key,
        audience=audience or None,
        metadata_fields=_metadata_fields(entry),
    )


def _metadata_fields(entry: _Entry) -> tuple[MetadataField, ...]:
    file = entry.file
    raw = file.get(entry.data, "metadata_fields", list, [], entry.where)
    fields: list[MetadataField] = []
    for i, item in enumerate(raw):
        where = entry.at(f"metadata_fields[{i}]")
        if not isinstance(item, Mapping):
            raise file.error(where, "must be an object")
        file.check_keys(item, frozenset({"required", "name", "field_name"}), where)
        name = file.get(item, "name", str, None, where)
        if not name:
            raise file.error(f"{where}.name", "the claim path is required")
        fields.append(
            MetadataField(
                path=name,
                field_name=file.get(item, "field_name", str, name.rsplit(".", 1)[-1], where),
                required=file.get(item, "required", bool, False, where),
            )
        )
    return tuple(fields)


_CUSTOM_DATA_KEYS = frozenset(
    {
        "enabled",
        "mongo_service_name",
        "mongo_service_id",
        "database_name",
        "collection_name",
        "user_id_field",
        "on_user_creation_function_name",
        "on_user_creation_function_id",
    }
)


def custom_data_settings(
    file: AppFile, data: Mapping[str, Any], services: tuple[str, ...], where: str = ""
) -> tuple[CustomDataSettings, str | None]:
    """Custom user data settings and the user creation function's name (if any)."""
    file.check_keys(data, _CUSTOM_DATA_KEYS, where)
    enabled = file.get(data, "enabled", bool, False, where)
    if not enabled:
        return CustomDataSettings(enabled=False), None
    values: dict[str, str] = {}
    for key in ("mongo_service_name", "database_name", "collection_name", "user_id_field"):
        value = file.get(data, key, str, "", where)
        if not value:
            raise file.error(
                f"{where}.{key}" if where else key, "is required when custom user data is enabled"
            )
        values[key] = value
    if values["mongo_service_name"] not in services:
        raise file.error(
            f"{where}.mongo_service_name" if where else "mongo_service_name",
            f"no data source named {values['mongo_service_name']!r} (data_sources/<name>/config.json)",
        )
    on_creation = file.get(data, "on_user_creation_function_name", str, "", where) or None
    return (
        CustomDataSettings(
            enabled=True,
            database=values["database_name"],
            collection=values["collection_name"],
            user_id_field=values["user_id_field"],
            service=values["mongo_service_name"],
            on_user_creation_function=on_creation,
        ),
        on_creation,
    )
