"""Server settings: a frozen :class:`ServerConfig`, read from TOML or the demo defaults.

``load_config(None)`` gives the DEMO settings (every provider on, email/password
confirmed through the outbox, the demo functions module). ``load_config(path)``
reads a TOML file (see ``server/example.toml``, which documents every key):
providers are on only when their table is present (``enabled = false`` turns a
present one off); if the file has no ``[providers]`` table at all, the demo
providers apply. Relative paths in the file are relative to the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "DEMO_CUSTOM_TOKEN_SECRET",
    "DEMO_FUNCTIONS_MODULE",
    "DEMO_SERVER_API_KEY",
    "ApiKeySettings",
    "ConfigError",
    "CustomDataSettings",
    "CustomFunctionSettings",
    "CustomTokenSettings",
    "FacebookSettings",
    "LimitSettings",
    "MetadataField",
    "OpenIdSettings",
    "ProvidersConfig",
    "ScryptSettings",
    "ServerConfig",
    "ServerKey",
    "ThrottleSettings",
    "UserpassSettings",
    "load_config",
]

#: HS256 secret of the demo custom-token provider. LOCAL DEMO ONLY: anyone who
#: reads this source can mint tokens for it; configure your own key for real use.
DEMO_CUSTOM_TOKEN_SECRET = "appusers-local-demo-secret-NOT-FOR-PRODUCTION"
#: Server API key of the demo settings (logs in a ``server`` user). LOCAL DEMO ONLY.
DEMO_SERVER_API_KEY = "appusers-local-demo-server-key-NOT-FOR-PRODUCTION"
#: The functions module the demo settings load.
DEMO_FUNCTIONS_MODULE = Path(__file__).with_name("demo_functions.py")


class ConfigError(ValueError):
    """The TOML file is unreadable or holds a setting of the wrong shape."""


@attrs.frozen
class UserpassSettings:
    """``local-userpass``: how new accounts get confirmed and how passwords get reset."""

    auto_confirm: bool = False
    #: Function run on register / confirm/call instead of sending an email.
    confirmation_function: str | None = None
    #: Function run by reset/call (reset/send always emails).
    reset_function: str | None = None
    #: Seconds an emailed confirmation/reset token stays valid.
    token_lifetime: int = 1800


@attrs.frozen
class MetadataField:
    """Copy claim ``path`` (dotted) of a custom JWT into profile ``data[field_name]``."""

    path: str
    field_name: str
    required: bool = False


@attrs.frozen
class CustomTokenSettings:
    """``custom-token``: how to verify the caller's JWT."""

    algorithm: str = "HS256"  # HS256 (key = shared secret) or RS256 (key = public key PEM)
    key: str = DEMO_CUSTOM_TOKEN_SECRET
    audience: str | None = None
    metadata_fields: tuple[MetadataField, ...] = ()


@attrs.frozen
class CustomFunctionSettings:
    """``custom-function``: the function that turns a payload into an identity id."""

    function: str = "authenticate"


@attrs.frozen
class OpenIdSettings:
    """``oauth2-google`` / ``oauth2-apple``: offline id_token verification (RS256)."""

    client_id: str | None = None
    jwks_path: Path | None = None
    #: google only: function exchanging an ``authCode`` for a user info document.
    code_exchange_function: str | None = None


@attrs.frozen
class FacebookSettings:
    """``oauth2-facebook``: function verifying an ``accessToken`` and returning user info."""

    verifier_function: str = "verify_facebook"


@attrs.frozen
class ServerKey:
    """A server API key: its name and the sha256 hex digest of the key string."""

    name: str
    key_sha256: str


@attrs.frozen
class ApiKeySettings:
    """``api-key``: user keys are created over HTTP; server keys come from here."""

    server_keys: tuple[ServerKey, ...] = ()


@attrs.frozen
class ProvidersConfig:
    """One settings object per enabled provider; ``None`` means the provider is off."""

    anon_user: bool = True
    local_userpass: UserpassSettings | None = UserpassSettings()
    api_key: ApiKeySettings | None = ApiKeySettings()
    custom_token: CustomTokenSettings | None = CustomTokenSettings()
    custom_function: CustomFunctionSettings | None = CustomFunctionSettings()
    oauth2_google: OpenIdSettings | None = OpenIdSettings()
    oauth2_facebook: FacebookSettings | None = FacebookSettings()
    oauth2_apple: OpenIdSettings | None = OpenIdSettings()

    def enabled(self, provider: str) -> bool:
        """Whether the provider named as on the wire (``anon-user``...) is on."""
        attr = provider.replace("-", "_")
        if attr not in attrs.fields_dict(ProvidersConfig):
            return False
        value = getattr(self, attr)
        return value is not None and value is not False


@attrs.frozen
class CustomDataSettings:
    """Where custom user data lives: one document per user in ``database.collection``."""

    enabled: bool = True
    database: str = "appusers"
    collection: str = "custom_data"
    user_id_field: str = "user_id"
    #: The mongo service whose store holds the collection.
    service: str = "mongodb-atlas"


@attrs.frozen
class ThrottleSettings:
    """Login throttling (see ``_throttle.py`` for the algorithm).

    After ``account_free_failures`` failed logins for one account (or
    ``address_free_failures`` from one client address) within ``window``
    seconds, each further attempt must wait ``base_delay * 2**(n-1)`` seconds
    after the last failure, capped at ``max_delay``. Nothing ever locks an
    account for longer than ``max_delay``; a success clears the account counter.
    """

    enabled: bool = True
    account_free_failures: int = 5
    address_free_failures: int = 100
    base_delay: float = 1.0
    max_delay: float = 60.0
    window: float = 900.0


@attrs.frozen
class ScryptSettings:
    """scrypt cost for password hashes (defaults: n=2**15, r=8, p=1, ~32 MiB, ~50 ms)."""

    n: int = 2**15
    r: int = 8
    p: int = 1


@attrs.frozen
class LimitSettings:
    """Request limits."""

    max_body_bytes: int = 4 * 1024 * 1024
    function_timeout: float = 60.0
    #: Seconds a document-store operation may take (queueing included) before MaxTimeMSExpired.
    document_timeout: float = 10.0
    #: Bytes of unread change events one watch stream may hold before it is closed as fallen behind.
    watch_buffer_bytes: int = 1024 * 1024
    #: Open watch streams per user, and in the whole server; one more gets 429.
    watch_streams_per_user: int = 32
    watch_streams: int = 1024


@attrs.frozen
class ServerConfig:
    """Everything the server needs besides its data directory and address."""

    app_id: str = "appusers-local"
    providers: ProvidersConfig = ProvidersConfig()
    functions_module: Path | None = None
    custom_data: CustomDataSettings = CustomDataSettings()
    mongo_services: tuple[str, ...] = ("mongodb-atlas", "mongo-db")
    access_token_lifetime: int = 1800
    refresh_token_lifetime: int = 60 * 24 * 3600
    limits: LimitSettings = LimitSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    scrypt: ScryptSettings = ScryptSettings()

    @classmethod
    def demo(cls) -> ServerConfig:
        """The DEMO settings: all providers, demo functions, a demo server key."""
        import hashlib

        return cls(
            providers=ProvidersConfig(
                local_userpass=UserpassSettings(reset_function="reset_password"),
                api_key=ApiKeySettings(
                    server_keys=(ServerKey("demo", hashlib.sha256(DEMO_SERVER_API_KEY.encode()).hexdigest()),)
                ),
                oauth2_google=OpenIdSettings(code_exchange_function="exchange_google_code"),
            ),
            functions_module=DEMO_FUNCTIONS_MODULE,
        )


def load_config(path: str | Path | None) -> ServerConfig:
    """Read ``path`` (TOML) into a :class:`ServerConfig`; ``None`` -> the demo settings."""
    if path is None:
        return ServerConfig.demo()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return _from_mapping(raw, path.parent)


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _get(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key} has the wrong type")
    return value


def _positive(value: Any, key: str) -> Any:
    if not value > 0:
        raise ConfigError(f"limits.{key} must be positive")
    return float(value) if isinstance(value, float) else value


def _path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _from_mapping(raw: Mapping[str, Any], base: Path) -> ServerConfig:
    demo = ServerConfig.demo()
    app_id = _get(raw, "app_id", str, demo.app_id, "")

    functions = _table(raw, "functions")
    module = _get(functions, "module", str, None, "functions")
    if module == "demo":
        functions_module: Path | None = DEMO_FUNCTIONS_MODULE
    else:
        functions_module = _path(module, base)

    providers = demo.providers if "providers" not in raw else _providers(_table(raw, "providers"), base)

    cd = _table(raw, "custom_data")
    custom_data = CustomDataSettings(
        enabled=_get(cd, "enabled", bool, "custom_data" in raw, "custom_data"),
        database=_get(cd, "database", str, "appusers", "custom_data"),
        collection=_get(cd, "collection", str, "custom_data", "custom_data"),
        user_id_field=_get(cd, "user_id_field", str, "user_id", "custom_data"),
        service=_get(cd, "service", str, "mongodb-atlas", "custom_data"),
    )

    mongo = _table(raw, "mongodb")
    services = _get(mongo, "services", list, list(demo.mongo_services), "mongodb")
    if not all(isinstance(s, str) and s for s in services):
        raise ConfigError("mongodb.services must be a list of names")

    tokens = _table(raw, "tokens")
    limits = _table(raw, "limits")
    throttle = _table(raw, "throttle")
    security = _table(raw, "security")
    number = (int, float)
    return ServerConfig(
        app_id=app_id,
        providers=providers,
        functions_module=functions_module,
        custom_data=custom_data,
        mongo_services=tuple(services),
        access_token_lifetime=_get(tokens, "access_lifetime", int, 1800, "tokens"),
        refresh_token_lifetime=_get(tokens, "refresh_lifetime", int, 60 * 24 * 3600, "tokens"),
        limits=LimitSettings(
            max_body_bytes=_get(limits, "max_body_bytes", int, 4 * 1024 * 1024, "limits"),
            function_timeout=float(_get(limits, "function_timeout", number, 60.0, "limits")),
            document_timeout=_positive(
                _get(limits, "document_timeout", number, 10.0, "limits"), "document_timeout"
            ),
            watch_buffer_bytes=_positive(
                _get(limits, "watch_buffer_bytes", int, 1024 * 1024, "limits"), "watch_buffer_bytes"
            ),
            watch_streams_per_user=_positive(
                _get(limits, "watch_streams_per_user", int, 32, "limits"), "watch_streams_per_user"
            ),
            watch_streams=_positive(_get(limits, "watch_streams", int, 1024, "limits"), "watch_streams"),
        ),
        throttle=ThrottleSettings(
            enabled=_get(throttle, "enabled", bool, True, "throttle"),
            account_free_failures=_get(throttle, "account_free_failures", int, 5, "throttle"),
            address_free_failures=_get(throttle, "address_free_failures", int, 100, "throttle"),
            base_delay=float(_get(throttle, "base_delay", number, 1.0, "throttle")),
            max_delay=float(_get(throttle, "max_delay", number, 60.0, "throttle")),
            window=float(_get(throttle, "window", number, 900.0, "throttle")),
        ),
        scrypt=ScryptSettings(
            n=_get(security, "scrypt_n", int, 2**15, "security"),
            r=_get(security, "scrypt_r", int, 8, "security"),
            p=_get(security, "scrypt_p", int, 1, "security"),
        ),
    )


def _on(table: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    if name not in table:
        return None
    sub = _table(table, name)
    return sub if _get(sub, "enabled", bool, True, f"providers.{name}") else None


def _providers(table: Mapping[str, Any], base: Path) -> ProvidersConfig:
    where = "providers"
    up = _on(table, "local-userpass")
    ak = _on(table, "api-key")
    ct = _on(table, "custom-token")
    cf = _on(table, "custom-function")
    go = _on(table, "oauth2-google")
    fb = _on(table, "oauth2-facebook")
    ap = _on(table, "oauth2-apple")
    server_keys: list[ServerKey] = []
    if ak is not None:
        import hashlib

        for entry in _get(ak, "server_keys", list, [], f"{where}.api-key"):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise ConfigError("providers.api-key.server_keys entries need a name")
            if isinstance(entry.get("key_sha256"), str):
                digest = entry["key_sha256"].lower()
            elif isinstance(entry.get("key"), str):
                digest = hashlib.sha256(entry["key"].encode()).hexdigest()
            else:
                raise ConfigError("providers.api-key.server_keys entries need key or key_sha256")
            server_keys.append(ServerKey(entry["name"], digest))
    fields: list[MetadataField] = []
    if ct is not None:
        for entry in _get(ct, "metadata_fields", list, [], f"{where}.custom-token"):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
                raise ConfigError("providers.custom-token.metadata_fields entries need a path")
            fields.append(
                MetadataField(
                    path=entry["path"],
                    field_name=str(entry.get("field_name", entry["path"].rsplit(".", 1)[-1])),
                    required=bool(entry.get("required", False)),
                )
            )
    key = None
    if ct is not None:
        key = _get(ct, "key", str, None, f"{where}.custom-token")
        key_file = _path(_get(ct, "key_file", str, None, f"{where}.custom-token"), base)
        if key_file is not None:
            key = key_file.read_text()
        if key is None:
            raise ConfigError("providers.custom-token needs key or key_file")
        if _get(ct, "algorithm", str, "HS256", where) not in ("HS256", "RS256"):
            raise ConfigError("providers.custom-token.algorithm must be HS256 or RS256")

    def openid(t: Mapping[str, Any] | None, name: str) -> OpenIdSettings | None:
        if t is None:
            return None
        return OpenIdSettings(
            client_id=_get(t, "client_id", str, None, f"{where}.{name}"),
            jwks_path=_path(_get(t, "jwks_file", str, None, f"{where}.{name}"), base),
            code_exchange_function=_get(t, "code_exchange_function", str, None, f"{where}.{name}"),
        )

    return ProvidersConfig(
        anon_user=_on(table, "anon-user") is not None,
        local_userpass=None
        if up is None
        else UserpassSettings(
            auto_confirm=_get(up, "auto_confirm", bool, False, where),
            confirmation_function=_get(up, "confirmation_function", str, None, where),
            reset_function=_get(up, "reset_function", str, None, where),
            token_lifetime=_get(up, "token_lifetime", int, 1800, where),
        ),
        api_key=None if ak is None else ApiKeySettings(server_keys=tuple(server_keys)),
        custom_token=None
        if ct is None or key is None
        else CustomTokenSettings(
            algorithm=_get(ct, "algorithm", str, "HS256", where),
            key=key,
            audience=_get(ct, "audience", str, None, where),
            metadata_fields=tuple(fields),
        ),
        custom_function=None
        if cf is None
        else CustomFunctionSettings(function=_get(cf, "function", str, "authenticate", where)),
        oauth2_google=openid(go, "oauth2-google"),
        oauth2_facebook=None
        if fb is None
        else FacebookSettings(verifier_function=_get(fb, "verifier_function", str, "verify_facebook", where)),
        oauth2_apple=openid(ap, "oauth2-apple"),
    )
