"""PostgreSQL for the tests: one database per test session, one schema per server.

``APPUSERS_TEST_POSTGRES`` names a server and a role that may CREATE DATABASE
(``.ci/install-postgres.sh`` prints one). The first test that needs PostgreSQL creates
``appusers_test_<pid>_<random>``; :func:`drop_postgres_database` drops it when the session
ends. Each server gets its own schema (``search_path`` in the URL), so tests stay apart.
"""

from __future__ import annotations

import itertools
import os
import secrets
import urllib.parse

import attrs
import pytest

from appusers.server import ServerConfig

__all__ = [
    "POSTGRES_ENV",
    "SERVER_DB_ENV",
    "drop_postgres_database",
    "new_postgres_url",
    "postgres_admin_url",
    "server_database",
]

#: A PostgreSQL URL whose role may CREATE DATABASE (.ci/install-postgres.sh prints one). The
#: suite creates one database per session under it, one schema per server, and drops it at the end.
POSTGRES_ENV = "APPUSERS_TEST_POSTGRES"
#: "postgres": the shared server fixtures (here, tests/e2e, tests/interop) keep users in
#: PostgreSQL instead of SQLite (the extra pass .ci/test runs over the e2e and interop suites).
SERVER_DB_ENV = "APPUSERS_TEST_SERVER_DB"
_pg_session: dict[str, str] = {}
_schemas = itertools.count()


def postgres_admin_url() -> str | None:
    """The admin URL, or None (a failure in CI, where .ci/test provides PostgreSQL)."""
    url = os.environ.get(POSTGRES_ENV) or None
    if url is None and os.environ.get("CI") == "true":
        pytest.fail(f"{POSTGRES_ENV} is not set: .ci/test starts PostgreSQL (.ci/install-postgres.sh)")
    return url


def _with_path(url: str, database: str, **query: str) -> str:
    parts = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(parts.query)) | query
    return urllib.parse.urlunsplit(
        parts._replace(
            path="/" + database, query=urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        )
    )


def _postgres_database() -> str:
    """This session's test database (created on first use); its URL."""
    if "url" not in _pg_session:
        try:
            import psycopg
            from psycopg import sql
        except ImportError:  # e.g. the lowest-versions job installs only the server and test extras
            pytest.skip("psycopg is not installed (the postgres extra)")
        admin = postgres_admin_url()
        if admin is None:
            pytest.skip(f"no PostgreSQL: set {POSTGRES_ENV}=postgresql://user:pass@127.0.0.1/postgres")
        name = f"appusers_test_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        _pg_session.update(admin=admin, name=name, url=_with_path(admin, name))
    return _pg_session["url"]


def drop_postgres_database() -> None:
    """Drop the session's database, if one was made."""
    if "name" not in _pg_session:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(_pg_session["admin"], autocommit=True) as conn:
        name = sql.Identifier(_pg_session["name"])
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    _pg_session.clear()


def new_postgres_url() -> str:
    """A URL to a new, empty schema of the session's test database (skips without PostgreSQL)."""
    import psycopg

    database = _postgres_database()
    schema = f"s{next(_schemas)}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return _with_path(
        database, _pg_session["name"], options=f"-csearch_path={schema} -csynchronous_commit=off"
    )


def server_database(config: ServerConfig | None) -> ServerConfig:
    """``config`` (None: the demo settings) on a fresh PostgreSQL schema in the PostgreSQL pass."""
    config = config if config is not None else ServerConfig.demo()
    if os.environ.get(SERVER_DB_ENV) != "postgres":
        return config
    return attrs.evolve(config, database=attrs.evolve(config.database, url=new_postgres_url()))
