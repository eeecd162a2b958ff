"""Server settings: a frozen :class:`ServerConfig`, read from TOML or the demo defaults.

``load_config(None)`` gives the DEMO settings (every provider on, email/password
confirmed through the outbox, the demo functions module). ``load_config(path)``
reads a TOML file (see ``server/example.toml``, which documents every key):
providers are on only when their table is present (``enabled = false`` turns a
present one off); if the file has no ``[providers]`` table at all, the demo
providers apply. Relative paths in the file are relative to the file.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._config_schema import check_keys, type_name
from ._errors import ConfigError
from ._function_settings import AuthTrigger, EnvironmentSettings, FunctionSettings, from_toml
from .rules import (
    DefaultRule,
    NamespaceRule,
    Role,
    RuleConfigError,
    parse_default_rule,
    parse_namespace_rule,
)

__all__ = [
    "DEMO_CUSTOM_TOKEN_SECRET",
    "DEMO_FUNCTIONS_MODULE",
    "DEMO_SERVER_API_KEY",
    "AdminKey",
    "AdminSettings",
    "AnonymousPurgeSettings",
    "ApiKeySettings",
    "ConfigError",
    "CustomDataSettings",
    "CustomFunctionSettings",
    "CustomTokenSettings",
    "DatabaseSettings",
    "FacebookSettings",
    "HttpSettings",
    "LimitSettings",
    "MetadataField",
    "OpenIdSettings",
    "ProvidersConfig",
    "ScryptSettings",
    "ServerConfig",
    "ServerKey",
    "ThrottleSettings",
    "UserpassSettings",
    "admin_key_from_file",
    "demo_rules",
    "load_config",
    "read_default_rule",
    "read_namespace_rule",
]

#: HS256 secret of the demo custom-token provider. LOCAL DEMO ONLY: anyone who
#: reads this source can mint tokens for it; configure your own key for real use.
DEMO_CUSTOM_TOKEN_SECRET = "appusers-local-demo-secret-NOT-FOR-PRODUCTION"
#: Server API key of the demo settings (logs in a ``server`` user). LOCAL DEMO ONLY.
DEMO_SERVER_API_KEY = "appusers-local-demo-server-key-NOT-FOR-PRODUCTION"
#: The functions module the demo settings load.
DEMO_FUNCTIONS_MODULE = Path(__file__).with_name("demo_functions.py")


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
    #: register, confirm/send, reset/send and reset/call answer the same for known and unknown
    #: addresses (off: App Services' answers, 409/404, which tell a prober who is registered).
    prevent_user_enumeration: bool = True


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
    key: str = attrs.field(default=DEMO_CUSTOM_TOKEN_SECRET, repr=False)  # a secret: never in a repr
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

    def hook_functions(self) -> frozenset[str]:
        """Functions the enabled providers call at log-in, confirmation or reset time.

        They are private unless a function setting says otherwise: a client must not be
        able to call a password-reset or authentication hook directly.
        """
        hooks: set[str | None] = set()
        if self.local_userpass is not None:
            hooks |= {self.local_userpass.confirmation_function, self.local_userpass.reset_function}
        if self.custom_function is not None:
            hooks.add(self.custom_function.function)
        if self.oauth2_google is not None:
            hooks.add(self.oauth2_google.code_exchange_function)
        if self.oauth2_facebook is not None:
            hooks.add(self.oauth2_facebook.verifier_function)
        return frozenset(h for h in hooks if h is not None)


@attrs.frozen
class CustomDataSettings:
    """Where custom user data lives: one document per user in ``database.collection``."""

    enabled: bool = True
    database: str = "appusers"
    collection: str = "custom_data"
    user_id_field: str = "user_id"
    #: The mongo service whose store holds the collection.
    service: str = "mongodb-atlas"
    #: Custom data larger than this (bytes of canonical EJSON) is left out of access tokens
    #: (it stays readable in its document), so no user's data can outgrow the header limit.
    max_token_bytes: int = 16 * 1024
    #: Run as system with the new user (``{id, type, data, identities}``) right after a log-in
    #: created it; if it fails, the user is deleted again and the log-in fails.
    on_user_creation_function: str | None = None


@attrs.frozen
class ThrottleSettings:
    """Login throttling and account-route rate limits (see ``_throttle.py`` for the algorithm).

    After ``account_free_failures`` failed logins at one account from one address (or
    ``address_free_failures`` from one address, or ``account_wide_free_failures`` at one
    account from anywhere) within ``window`` seconds, each further attempt must wait
    ``base_delay * 2**(n-1)`` seconds after the last failure, capped at ``max_delay``
    (``account_wide_max_delay`` for the account-wide count, which only slows addresses that
    have not logged in to the account within ``known_for`` seconds). Nobody is locked out.
    The email/password account routes are rate limited per address (``userpass_per_address``
    requests at once, refilled at ``userpass_address_rate`` per second) and per email address
    (``userpass_per_email``, refilled at ``userpass_email_rate``); 0 turns a limit off.
    """

    enabled: bool = True
    account_free_failures: int = 5
    address_free_failures: int = 100
    account_wide_free_failures: int = 20
    base_delay: float = 1.0
    max_delay: float = 90.0
    account_wide_max_delay: float = 30.0
    window: float = 900.0
    known_for: float = 30 * 24 * 3600.0
    userpass_per_address: int = 60
    userpass_address_rate: float = 1.0
    userpass_per_email: int = 10
    userpass_email_rate: float = 10 / 3600


@attrs.frozen
class ScryptSettings:
    """scrypt cost for password hashes (defaults: n=2**15, r=8, p=1, ~32 MiB, ~50 ms)."""

    n: int = 2**15
    r: int = 8
    p: int = 1
    #: Threads hashing passwords at once (the rest of the server keeps the other cores), and
    #: how many hashings may wait for one before new ones are refused with 429.
    workers: int = 1
    max_waiting: int = 64
    #: How much lower the hashing threads' scheduling priority is (Linux ``nice``; 0 = same).
    nice: int = 10


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
class AdminKey:
    """An Admin API key pair the server accepts: the public key and the sha256 hex digest
    of the private key (the private key itself is never kept)."""

    public_key: str
    private_key_sha256: str = attrs.field(repr=False)

    @classmethod
    def from_private(cls, public_key: str, private_key: str) -> AdminKey:
        import hashlib

        return cls(public_key, hashlib.sha256(private_key.encode("utf-8")).hexdigest())


@attrs.frozen
class AdminSettings:
    """The Admin API (``/api/admin/v3.0``): off (every admin route 404) without a key."""

    keys: tuple[AdminKey, ...] = ()
    #: App Services' lifetimes: admin access tokens 30 minutes, refresh tokens 60 days.
    access_token_lifetime: int = 1800
    refresh_token_lifetime: int = 60 * 24 * 3600

    @property
    def enabled(self) -> bool:
        """Whether any key pair is configured."""
        return bool(self.keys)


@attrs.frozen
class AnonymousPurgeSettings:
    """Anonymous users inactive (no log-in, no refresh) for ``inactive_days`` are deleted,
    as App Services does after 90 days; every ``interval`` seconds by a server task
    (0: only on request, e.g. ``appusers admin purge-anonymous``). ``inactive_days = 0``
    turns the purge off."""

    inactive_days: float = 90.0
    interval: float = 3600.0


@attrs.frozen
class HttpSettings:
    """The HTTP listener: limits against slow and flooding clients, proxies, CORS."""

    #: Seconds a client has to send a request's head (from connecting, or on a kept-alive
    #: connection within each such period) and, separately, its body; slower ones are dropped,
    #: and so are kept-alive connections idle that long.
    read_timeout: float = 10.0
    #: Open connections per client address (0: no cap); more are closed on arrival.
    max_connections_per_address: int = 256
    #: Longest request line or header field (bytes); access tokens are kept below it.
    max_header_bytes: int = 32 * 1024
    #: Peers (addresses or CIDR networks) whose X-Forwarded-For / Forwarded headers name the
    #: client; from anyone else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    #: Origins browsers may call from; "*" = any origin, never with credentials (tokens travel
    #: in the Authorization header, not in cookies).
    allowed_origins: tuple[str, ...] = ("*",)


@attrs.frozen
class DatabaseSettings:
    """Where users, sessions, keys and throttling counters live.

    ``url`` None: the embedded SQLite file in the data directory (one server process).
    A ``postgresql://`` URL: a PostgreSQL database several ``appusers serve`` processes
    share (see ``_pg_store.py``). The URL may carry a password, so it is never shown:
    :attr:`safe_url` is what logs and errors print.
    """

    url: str | None = attrs.field(default=None, repr=False)
    #: Connections each server process keeps open at most (and at least ``pool_min``).
    pool_size: int = 10
    pool_min: int = 1
    #: Seconds to wait for the database at start before giving up with a clear error.
    connect_timeout: float = 10.0

    def __repr__(self) -> str:
        return f"DatabaseSettings(url={self.safe_url!r}, pool_size={self.pool_size})"

    @property
    def safe_url(self) -> str | None:
        """The URL with any password replaced by ``***``."""
        return None if self.url is None else redact_url(self.url)


def redact_url(url: str) -> str:
    """``url`` with the password of its user-info (and any ``password=`` parameter) masked."""
    url = re.sub(r"(?<=://)([^/:@?#]*):[^?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


def parse_database_url(url: str) -> str:
    """Check that ``url`` names a PostgreSQL database; the URL (ConfigError otherwise)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"database url {redact_url(url)!r} is not supported: expected postgresql://user@host/dbname"
        )
    return url


@attrs.frozen
class MongoSettings:
    """Where the MongoDB service's documents live.

    ``uri`` None: the embedded document store in the data directory. A ``mongodb://`` or
    ``mongodb+srv://`` URI: a MongoDB deployment (a replica set for change streams), reached
    through pymongo's ``AsyncMongoClient`` and shared by every server using it. The URI may
    carry a password: :attr:`safe_uri` is what logs and errors print.
    """

    uri: str | None = attrs.field(default=None, repr=False)
    #: Seconds to wait for a server at start (and per operation to select one) before failing.
    connect_timeout: float = 10.0

    def __repr__(self) -> str:
        return f"MongoSettings(uri={self.safe_uri!r})"

    @property
    def safe_uri(self) -> str | None:
        """The URI with any password replaced by ``***``."""
        return None if self.uri is None else redact_url(self.uri)


def parse_mongodb_uri(uri: str) -> str:
    """Check that ``uri`` is a MongoDB connection string pymongo accepts; the URI (ConfigError otherwise).

    A ``mongodb://`` URI is parsed fully here (hosts, options); a ``mongodb+srv://`` one only
    for its shape, since its hosts come from a DNS lookup made when the server connects.
    """
    from pymongo.errors import ConfigurationError, InvalidURI
    from pymongo.uri_parser import parse_uri

    shown = redact_url(uri)
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(
            f"mongodb uri {shown!r} is not supported:"
            " expected mongodb://host[:port]/... or mongodb+srv://host/..."
        )
    if uri.startswith("mongodb+srv://"):
        host = uri[len("mongodb+srv://") :].rpartition("@")[2].split("/", 1)[0].split("?", 1)[0]
        if not host or "," in host or ":" in host or "." not in host:
            raise ConfigError(
                f"mongodb uri {shown!r}: mongodb+srv:// needs one host name with a domain, no port"
            )
        return uri
    try:
        parse_uri(uri)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        reason = str(exc)
        if "@" in uri:  # pymongo may quote the user-info it could not parse
            reason = reason.replace(uri.split("://", 1)[1].rpartition("@")[0], "***")
        raise ConfigError(f"mongodb uri {shown!r} is not valid: {reason}") from None
    return uri


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
    http: HttpSettings = HttpSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    scrypt: ScryptSettings = ScryptSettings()
    admin: AdminSettings = AdminSettings()
    anonymous_purge: AnonymousPurgeSettings = AnonymousPurgeSettings()
    database: DatabaseSettings = DatabaseSettings()
    mongodb: MongoSettings = MongoSettings()
    #: Per-function settings (``functions/config.json`` / ``[[functions.config]]``). A function
    #: not listed is public and runs as its caller, except provider hooks, which are private.
    function_settings: tuple[FunctionSettings, ...] = ()
    #: ``context.values`` / ``%%values``: name -> value.
    values: Mapping[str, Any] = attrs.field(factory=dict)
    environment: EnvironmentSettings = attrs.field(factory=EnvironmentSettings)
    #: Authentication triggers (CREATE / LOGIN / DELETE).
    triggers: tuple[AuthTrigger, ...] = ()
    #: Rules of the MongoDB services (App Services semantics, see ``appusers.server.rules``):
    #: one per namespace, and at most one default rule per service (``service`` None = every
    #: service). A namespace with neither is denied to app users.
    rules: tuple[NamespaceRule, ...] = ()
    default_rules: tuple[DefaultRule, ...] = ()

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
            **demo_rules(),
        )


def demo_rules(custom_data: CustomDataSettings | None = None) -> dict[str, Any]:
    """The demo settings' rules as ``ServerConfig`` keyword arguments.

    Each user may read and write only their own custom-data document
    (``user_id_field`` = ``%%user.id``) and, in every other collection, only the
    documents whose ``owner_id`` is their id (the default rule).
    """
    cd = custom_data or CustomDataSettings()
    own_data = Role(name="own custom data", apply_when={cd.user_id_field: "%%user.id"}, read=True, write=True)
    owner = Role(name="owner", apply_when={"owner_id": "%%user.id"}, read=True, write=True)
    return {
        "rules": (NamespaceRule(database=cd.database, collection=cd.collection, roles=(own_data,)),),
        "default_rules": (DefaultRule(roles=(owner,)),),
    }


def read_namespace_rule(
    path: str | Path,
    *,
    service: str | None = None,
    database: str | None = None,
    collection: str | None = None,
) -> NamespaceRule:
    """Parse an exported ``rules.json`` (``data_sources/<svc>/<db>/<coll>/rules.json``).

    ``database``/``collection`` (from the path) win over the file's own keys; a
    ConfigError names the file and the key path.
    """
    data = _json_file(path)
    try:
        return parse_namespace_rule(
            data, service=service, database=database, collection=collection, where="rules.json"
        )
    except RuleConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read_default_rule(path: str | Path, *, service: str | None = None) -> DefaultRule:
    """Parse an exported ``data_sources/<svc>/default_rule.json``; ConfigError names file and key."""
    data = _json_file(path)
    try:
        return parse_default_rule(data, service=service, where="default_rule.json")
    except RuleConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _json_file(path: str | Path) -> Any:
    try:
        with Path(path).open("rb") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read rule file {path}: {exc}") from None


def _rules(raw: Mapping[str, Any], custom_data: CustomDataSettings) -> dict[str, Any]:
    """``[[rules]]`` and ``[default_rule]``; neither present -> the demo rules (like providers)."""
    if "rules" not in raw and "default_rule" not in raw:
        return demo_rules(custom_data)
    entries = raw.get("rules", [])
    if not isinstance(entries, list):
        raise ConfigError("rules must be an array of tables ([[rules]])")
    rules: list[NamespaceRule] = []
    seen: set[tuple[str | None, str, str]] = set()
    try:
        for i, entry in enumerate(entries):
            rule = parse_namespace_rule(entry, where=f"rules[{i}]")
            key = (rule.service, rule.database, rule.collection)
            if key in seen:
                raise ConfigError(f"rules[{i}] repeats the rule for {rule.database}.{rule.collection}")
            seen.add(key)
            rules.append(rule)
        defaults: tuple[DefaultRule, ...] = ()
        if "default_rule" in raw:
            defaults = (parse_default_rule(raw["default_rule"], where="default_rule"),)
    except RuleConfigError as exc:
        raise ConfigError(str(exc)) from None
    return {"rules": tuple(rules), "default_rules": defaults}


def load_config(path: str | Path | None) -> ServerConfig:
    """Read ``path`` (TOML) into a :class:`ServerConfig`; ``None`` -> the demo settings."""
    if path is None:
        return ServerConfig.demo()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # OSError: missing, unreadable, a directory; UnicodeDecodeError: not a text file.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config {path}: {reason}") from None
    check_keys(raw)
    return _from_mapping(raw, path.parent)


def admin_key_from_file(path: str | Path) -> AdminKey:
    """The :class:`AdminKey` of a key file (see ``appusers._admin_key``); ConfigError otherwise."""
    from appusers._admin_key import AdminKeyError, read_admin_key_file

    try:
        pair = read_admin_key_file(path)
    except AdminKeyError as exc:
        raise ConfigError(str(exc)) from None
    return AdminKey.from_private(pair.public_key, pair.private_key)


def _admin(table: Mapping[str, Any], base: Path) -> AdminSettings:
    where = "admin"
    keys: list[AdminKey] = []
    key_file = _path(_get(table, "key_file", str, None, where), base)
    if key_file is not None:
        keys.append(admin_key_from_file(key_file))
    public = _get(table, "public_key", str, None, where)
    private = _get(table, "private_key", str, None, where)
    private_sha = _get(table, "private_key_sha256", str, None, where)
    if public is not None:
        if (private is None) == (private_sha is None):
            raise ConfigError("admin.public_key needs exactly one of private_key or private_key_sha256")
        if private_sha is not None:
            if len(private_sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in private_sha):
                raise ConfigError("admin.private_key_sha256 must be 64 hex digits")
            keys.append(AdminKey(public, private_sha.lower()))
        else:
            assert private is not None
            keys.append(AdminKey.from_private(public, private))
    elif private is not None or private_sha is not None:
        raise ConfigError("admin.private_key given without admin.public_key")
    if not all(k.public_key.strip() for k in keys):
        raise ConfigError("admin.public_key must not be empty")
    access = _get(table, "access_lifetime", int, 1800, where)
    refresh = _get(table, "refresh_lifetime", int, 60 * 24 * 3600, where)
    if access <= 0 or refresh <= 0:
        raise ConfigError("admin.access_lifetime and admin.refresh_lifetime must be positive")
    return AdminSettings(keys=tuple(keys), access_token_lifetime=access, refresh_token_lifetime=refresh)


def _anonymous_purge(table: Mapping[str, Any]) -> AnonymousPurgeSettings:
    where = "users"
    number = (int, float)
    days = float(_get(table, "anonymous_inactive_days", number, 90.0, where))
    interval = float(_get(table, "purge_interval", number, 3600.0, where))
    if days < 0 or interval < 0:
        raise ConfigError("users.anonymous_inactive_days and users.purge_interval must not be negative")
    return AnonymousPurgeSettings(inactive_days=days, interval=interval)


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{key}] must be a table, not {type_name(type(value))}")
    return value


def _get(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        path = f"{where}.{key}" if where else key
        raise ConfigError(f"{path} must be {type_name(kind)}, not {type_name(type(value))}")
    return value


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
        max_token_bytes=_get(cd, "max_token_bytes", int, 16 * 1024, "custom_data"),
        on_user_creation_function=_get(cd, "on_user_creation_function", str, None, "custom_data"),
    )

    mongo = _table(raw, "mongodb")
    services = _get(mongo, "services", list, list(demo.mongo_services), "mongodb")
    if not all(isinstance(s, str) and s for s in services):
        raise ConfigError("mongodb.services must be a list of names")
    mongo_uri = _get(mongo, "uri", str, None, "mongodb")
    mongo_timeout = _get(mongo, "connect_timeout", (int, float), 10.0, "mongodb")
    mongodb = MongoSettings(
        uri=None if mongo_uri is None else parse_mongodb_uri(mongo_uri),
        connect_timeout=float(_positive(mongo_timeout, "mongodb.connect_timeout")),
    )

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
            document_timeout=float(
                _positive(_get(limits, "document_timeout", number, 10.0, "limits"), "limits.document_timeout")
            ),
            watch_buffer_bytes=_positive(
                _get(limits, "watch_buffer_bytes", int, 1024 * 1024, "limits"), "limits.watch_buffer_bytes"
            ),
            watch_streams_per_user=_positive(
                _get(limits, "watch_streams_per_user", int, 32, "limits"), "limits.watch_streams_per_user"
            ),
            watch_streams=_positive(
                _get(limits, "watch_streams", int, 1024, "limits"), "limits.watch_streams"
            ),
        ),
        http=_http(_table(raw, "http")),
        throttle=_throttle(throttle),
        scrypt=ScryptSettings(
            n=_get(security, "scrypt_n", int, 2**15, "security"),
            r=_get(security, "scrypt_r", int, 8, "security"),
            p=_get(security, "scrypt_p", int, 1, "security"),
            workers=_positive(_get(security, "hash_workers", int, 1, "security"), "security.hash_workers"),
            max_waiting=_get(security, "hash_max_waiting", int, 64, "security"),
            nice=_get(security, "hash_nice", int, 10, "security"),
        ),
        admin=_admin(_table(raw, "admin"), base),
        anonymous_purge=_anonymous_purge(_table(raw, "users")),
        database=_database(_table(raw, "database")),
        mongodb=mongodb,
        **from_toml(raw, base),
        **_rules(raw, custom_data),
    )


def _database(t: Mapping[str, Any]) -> DatabaseSettings:
    d = DatabaseSettings()
    url = _get(t, "url", str, None, "database")
    pool_size = _positive(_get(t, "pool_size", int, d.pool_size, "database"), "database.pool_size")
    pool_min = _get(t, "pool_min", int, d.pool_min, "database")
    if not 0 <= pool_min <= pool_size:
        raise ConfigError("database.pool_min must be between 0 and database.pool_size")
    timeout = _get(t, "connect_timeout", (int, float), d.connect_timeout, "database")
    return DatabaseSettings(
        url=None if url is None else parse_database_url(url),
        pool_size=pool_size,
        pool_min=pool_min,
        connect_timeout=float(_positive(timeout, "database.connect_timeout")),
    )


def _positive(value: Any, where: str) -> Any:
    if value <= 0:
        raise ConfigError(f"{where} must be positive")
    return value


def _throttle(t: Mapping[str, Any]) -> ThrottleSettings:
    d = ThrottleSettings()
    values: dict[str, Any] = {}
    for field in attrs.fields(ThrottleSettings):
        default = getattr(d, field.name)
        kind: Any = bool if isinstance(default, bool) else (int if isinstance(default, int) else (int, float))
        value = _get(t, field.name, kind, default, "throttle")
        if not isinstance(value, bool) and value < 0:
            raise ConfigError(f"throttle.{field.name} must not be negative")
        values[field.name] = float(value) if isinstance(default, float) else value
    return ThrottleSettings(**values)


def _http(t: Mapping[str, Any]) -> HttpSettings:
    import ipaddress

    d = HttpSettings()
    proxies = _get(t, "trusted_proxies", list, list(d.trusted_proxies), "http")
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except (TypeError, ValueError):
            raise ConfigError(f"http.trusted_proxies: {proxy!r} is not an address or network") from None
    origins = _get(t, "allowed_origins", list, list(d.allowed_origins), "http")
    if not all(isinstance(o, str) and o for o in origins):
        raise ConfigError("http.allowed_origins must be a list of origins")
    return HttpSettings(
        read_timeout=float(
            _positive(_get(t, "read_timeout", (int, float), d.read_timeout, "http"), "http.read_timeout")
        ),
        max_connections_per_address=_get(
            t, "max_connections_per_address", int, d.max_connections_per_address, "http"
        ),
        max_header_bytes=_positive(
            _get(t, "max_header_bytes", int, d.max_header_bytes, "http"), "http.max_header_bytes"
        ),
        trusted_proxies=tuple(proxies),
        allowed_origins=tuple(o.rstrip("/") for o in origins),
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
            prevent_user_enumeration=_get(up, "prevent_user_enumeration", bool, True, where),
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
