"""Helpers of the end-to-end tests: a configured local server, and before/after snapshots.

A "nothing changed" check compares, before and after the failing call: every
table of the server's SQLite store, its outbox, its request counters and the
bytes of the client's FileStorage file.
"""

from __future__ import annotations

import collections
import hashlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from appusers import App, Credentials, User

#: The custom-token provider's HS256 secret and the server API key of the e2e config.
JWT_SECRET = "e2e-custom-token-secret-with-enough-length"
SERVER_KEY = "e2e-server-api-key-for-tests-only"
PASSWORD = "s3cret-pass"

_CONFIG = """\
app_id = "appusers-e2e"

[functions]
module = "server_functions.py"

[custom_data]
enabled = true

[security]
scrypt_n = 1024
scrypt_r = 8
scrypt_p = 1

[providers.anon-user]

[providers.local-userpass]
{confirmation}
{reset}
prevent_user_enumeration = {prevent_enumeration}

[providers.api-key]
server_keys = [{{ name = "ops", key_sha256 = "{server_key_sha256}" }}]

[providers.custom-token]
algorithm = "HS256"
key = "{jwt_secret}"
metadata_fields = [
    {{ path = "name", field_name = "name" }},
    {{ path = "email", field_name = "email" }},
    {{ path = "picture", field_name = "picture_url" }},
    {{ path = "given_name", field_name = "first_name" }},
    {{ path = "family_name", field_name = "last_name" }},
    {{ path = "info.gender", field_name = "gender" }},
    {{ path = "info.birthday", field_name = "birthday" }},
    {{ path = "info.min_age", field_name = "min_age" }},
    {{ path = "info.max_age", field_name = "max_age" }},
    {{ path = "team", field_name = "team", required = {team_required} }},
]
"""


def write_config(directory: Path, *, confirmation_function: bool = False, reset_function: bool = True,
                 team_required: bool = False, prevent_enumeration: bool = False) -> Path:
    """A TOML config (and its functions module) in ``directory``; returns the TOML path.

    With ``confirmation_function`` new accounts go through ``confirm_user`` of
    ``server_functions.py`` instead of the emailed token; without ``reset_function``
    ``reset/call`` has no function to run. The e2e suite checks how the SDK maps App
    Services' own answers (409 AccountNameInUse, 404 UserNotFound...) to typed errors, so
    the server gives those answers (``prevent_user_enumeration = false``) unless
    ``prevent_enumeration`` asks for the server's default.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("server_functions.py"), directory / "server_functions.py")
    path = directory / "server.toml"
    path.write_text(_CONFIG.format(
        confirmation='confirmation_function = "confirm_user"' if confirmation_function else "",
        reset='reset_function = "reset_password"' if reset_function else "",
        server_key_sha256=hashlib.sha256(SERVER_KEY.encode()).hexdigest(),
        jwt_secret=JWT_SECRET,
        team_required="true" if team_required else "false",
        prevent_enumeration="true" if prevent_enumeration else "false",
    ))
    return path


def custom_token(sub: str, **claims: Any) -> str:
    """A custom JWT for the e2e config's custom-token provider, valid for an hour."""
    import time

    import jwt

    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 3600, **claims},
                      JWT_SECRET, algorithm="HS256")


def function_outbox(server: Any) -> list[dict[str, Any]]:
    """What the custom confirmation/reset functions "sent" (see server_functions.py)."""
    import json

    path = Path(server.config.functions_module).with_name("function_outbox.jsonl")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def register_confirmed(app: App, server: Any, email: str, password: str = PASSWORD) -> None:
    """Register ``email`` and confirm it with the token the server put in its outbox."""
    await app.email_password_auth.register_user(email, password)
    mail = [m for m in server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])


async def email_user(app: App, server: Any, email: str, password: str = PASSWORD) -> User:
    await register_confirmed(app, server, email, password)
    return await app.log_in(Credentials.email_password(email, password))


#: Tables of the PostgreSQL store that SQLite keeps in memory (throttling) or does not have.
_PG_ONLY = {"throttle_counters", "rate_buckets", "appusers_schema"}


def server_tables(server: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the server's user store (read-only connection)."""
    url = server.config.database.url
    if url is not None:  # the PostgreSQL pass (tests/_pg_testkit.py): the server's own schema
        import psycopg

        with psycopg.connect(url) as conn:
            names = [
                r[0]
                for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                if r[0] not in _PG_ONLY
            ]
            return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    uri = f"file:{server.data_dir / 'users.sqlite3'}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: sorted(db.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        db.close()


class Snapshot:
    """The observable state of a server (and optionally of a client store file)."""

    def __init__(self, server: Any, storage_path: Path | None = None) -> None:
        self.server = server
        self.storage_path = storage_path
        self.tables = server_tables(server)
        self.outbox = server.read_outbox()
        self.functions_outbox = function_outbox(server)
        self.stats = collections.Counter(server.stats)
        self.storage = _read(storage_path)

    def requests(self) -> dict[str, int]:
        """Requests the server handled since the snapshot, by route (location excluded)."""
        diff = collections.Counter(self.server.stats) - self.stats
        diff.pop("location", None)
        return dict(diff)

    def assert_unchanged(self, **requests: int) -> None:
        """Nothing changed on the server or in storage; exactly ``requests`` were handled."""
        # (Messages spelled out: pytest rewrites asserts in test modules and conftest only.)
        got = self.requests()
        assert got == requests, f"requests handled: {got}, expected {requests}"
        tables = server_tables(self.server)
        changed = sorted(name for name in tables.keys() | self.tables.keys()
                         if tables.get(name) != self.tables.get(name))
        assert not changed, f"server tables changed: {changed}"
        assert self.server.read_outbox() == self.outbox, "the server's outbox changed"
        assert function_outbox(self.server) == self.functions_outbox, "a function sent something"
        if self.storage_path is not None:
            assert _read(self.storage_path) == self.storage, "the client's storage file changed"


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None and path.exists() else None


def stored(path: Path) -> dict[str, Any]:
    """The client's FileStorage file decoded: ``{"index": {...}, "<user id>": record}``."""
    import json

    from appusers._records import identities_from_raw, load_user
    from appusers.adapters._file import _parse

    items = _parse(path.read_bytes())
    out: dict[str, Any] = {}
    for key, value in items.items():
        if key.endswith(":index"):
            out["index"] = json.loads(value)
            continue
        record = load_user(value)
        profile = record.profile
        out[record.id] = {
            "state": record.state.value,
            "access_token": record.access_token,
            "refresh_token": record.refresh_token,
            "identities": [[i.id, i.provider_type] for i in identities_from_raw(record.identities)],
            "profile": None if profile is None else json.loads(profile[0]),
        }
    return out


async def session_alive(server: Any, refresh_token: str) -> bool:
    """Whether the server still accepts ``refresh_token`` (a raw ``POST /auth/session``)."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(
        f"{server.url}/api/client/v2.0/auth/session", headers={"Authorization": f"Bearer {refresh_token}"}
    ) as response:
        await response.read()
        return response.status == 201
