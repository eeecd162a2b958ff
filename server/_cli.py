"""``appusers serve``: run the local server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import attrs

from ._config import (
    ConfigError,
    ServerConfig,
    admin_key_from_file,
    load_config,
    parse_database_url,
    parse_mongodb_uri,
)
from ._server import LocalServer, open_user_store
from .documents import DocumentStoreError

__all__ = ["serve_main"]

#: Seconds a thread may hold the GIL while another waits for it (CPython's default is 5 ms). The
#: document store computes in pure Python on its worker thread; with the default, every wake-up
#: of the event loop behind a long operation could wait 5 ms for the GIL, and a request needs
#: several (measured in benchmarks/attacks_documents.py S13: GET location p50 11-14 ms -> 4-7 ms,
#: p99 37-41 ms -> 24-34 ms under pathological queries on a loaded 2-core machine). The process
#: is the server's own, so the setting is made here, not in LocalServer (a library in its host).
SWITCH_INTERVAL = 0.001


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 1-65535 (0 picks a free one)")
    return port


def _workers(text: str) -> int:
    from ._workers import MAX_WORKERS

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text!r}") from None
    if not 1 <= n <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{n} workers: use 1-{MAX_WORKERS}")
    return n


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="appusers serve", description="Run the local App Services-compatible server."
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--config", type=Path, default=None, help="TOML settings file (default: demo settings)"
    )
    source.add_argument(
        "--app-dir",
        type=Path,
        default=None,
        help="an App Services app directory as `appservices pull` exports it (see docs/migrating.md)",
    )
    p.add_argument(
        "--app-id",
        default=None,
        help="with --app-dir: the client app id (default: .mdb/meta.json, else the app's name)",
    )
    p.add_argument(
        "--environment", default=None, help="with --app-dir: override root_config.json's environment"
    )
    p.add_argument(
        "--secrets",
        type=Path,
        default=None,
        help="with --app-dir: JSON file {secret name: value} (secrets are not part of an export)",
    )
    p.add_argument(
        "--data", type=Path, default=Path("appusers-data"), help="data directory (default ./appusers-data)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=_port, default=9090, help="port (default 9090; 0 picks a free one)")
    p.add_argument("--admin-token", default=None, help="enable /_appusers/admin/* test hooks with this token")
    p.add_argument(
        "--admin-key-file",
        type=Path,
        default=None,
        help="serve the Admin API (/api/admin/v3.0) to this key pair: a JSON file"
        ' {"public_key", "private_key"}, e.g. from `appusers admin create-key FILE`',
    )
    p.add_argument(
        "--database",
        default=None,
        metavar="URL",
        help="keep users, sessions, keys and throttling counters in this PostgreSQL database"
        " (postgresql://user@host/dbname), shared by every server started with it; default:"
        " $APPUSERS_DATABASE_URL, else [database] url, else SQLite in the data directory."
        " Prefer PGPASSWORD or ~/.pgpass to a password in the URL",
    )
    p.add_argument(
        "--mongodb",
        default=None,
        metavar="URI",
        help="serve the MongoDB service (documents, custom user data, watch) from this MongoDB"
        " (mongodb://host/... or mongodb+srv://...; a replica set for watch); default:"
        " $APPUSERS_MONGODB_URI, else [mongodb] uri, else the embedded store in the data directory",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="serve from N processes on one port and one data directory (default 1; about one per"
        " core: see 'Deploying past one process' in docs/server.md)",
    )
    # Set by the supervisor of --workers N on the command lines of its own processes.
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--migrate-only",
        action="store_true",
        help="bring the database schema up to date and exit (servers also migrate at start)",
    )
    return p


def _with_database(config: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    url = args.database if args.database is not None else os.environ.get("APPUSERS_DATABASE_URL") or None
    if url is not None:
        config = attrs.evolve(config, database=attrs.evolve(config.database, url=parse_database_url(url)))
    uri = args.mongodb if args.mongodb is not None else os.environ.get("APPUSERS_MONGODB_URI") or None
    if uri is not None:
        config = attrs.evolve(config, mongodb=attrs.evolve(config.mongodb, uri=parse_mongodb_uri(uri)))
    return config


async def _migrate(config: ServerConfig, data_dir: Path) -> int:
    if config.database.url is None:
        from ._datadir import prepare

        prepare(data_dir)
        store = await open_user_store(config, data_dir)  # SQLite migrates its file on open
        await store.close()
        print(f"users database up to date: {data_dir / 'users.sqlite3'}", flush=True)
        return 0
    from ._pg_store import SCHEMA_VERSION, migrate_database

    found = await migrate_database(config.database.url, config.database.connect_timeout)
    print(
        f"database {config.database.safe_url}: schema version {SCHEMA_VERSION}"
        + (" (up to date)" if found == SCHEMA_VERSION else f" (migrated from {found})"),
        flush=True,
    )
    return 0


def _settings(args: argparse.Namespace) -> ServerConfig:
    if args.app_dir is None:
        if args.app_id is not None or args.environment is not None or args.secrets is not None:
            raise ConfigError("--app-id, --environment and --secrets go with --app-dir")
        return load_config(args.config)
    from .appdir import read_app_dir

    loaded = read_app_dir(
        args.app_dir, app_id=args.app_id, environment=args.environment, secrets=_secrets(args.secrets)
    )
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return loaded.config


def _secrets(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read secrets file {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: must hold a JSON object of secret name -> string value")
    return data


async def _serve(args: argparse.Namespace) -> int:
    config = _with_database(_settings(args), args)
    if args.migrate_only:
        return await _migrate(config, args.data)
    if args.admin_key_file is not None:
        key = admin_key_from_file(args.admin_key_file)
        config = attrs.evolve(config, admin=attrs.evolve(config.admin, keys=(*config.admin.keys, key)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    link = None
    if args.worker is not None:
        from ._workers import WorkerLink

        link = WorkerLink.parse(args.worker)
        link.check_lock()
        # EOF on this pipe: the supervisor is gone (even SIGKILLed); a worker never outlives it.
        loop.add_reader(link.alive_fd, stop.set)
    async with LocalServer(
        config=config,
        data_dir=args.data,
        host=args.host,
        port=args.port,
        admin_token=args.admin_token,
        worker=None if link is None else link.index,
    ) as server:
        extra: list[str] = []
        if config.admin.enabled:
            extra.append(
                f"admin api: {server.url}/api/admin/v3.0  group id: {server.group_id}"
                f"  app _id: {server.app_object_id}"
            )
        if config.functions_module is not None:
            extra.append(f"functions: {config.functions_module}")
        if args.app_dir is not None:
            extra.append(f"app directory: {args.app_dir}")
        if link is not None:
            # The supervisor prints one banner for the group.
            banner = {"url": server.url, "app_id": server.app_id, "data": str(server.data_dir)}
            link.ready({**banner, "extra": "\n".join(extra)})
        else:
            print(
                f"appusers server: {server.url}  app id: {server.app_id}  data: {server.data_dir}", flush=True
            )
            for line in extra:
                print(line, flush=True)
        _tune_gc()
        await stop.wait()
        if link is None:
            print("stopping", flush=True)
    return 0


#: Allocations between young-generation collections (CPython's default: 700). A request
#: allocates a few hundred objects, nearly all freed by reference counting; at the default
#: the collector ran every couple of requests, and each older-generation pass walked every
#: live object (cached users, sessions, tokens), a latency spike under load (issue 10: p99).
GC_THRESHOLD = (20_000, 20, 50)


def _tune_gc() -> None:
    """Fewer, cheaper collections for the serving process (its own, so set here, not in LocalServer)."""
    gc.collect()
    # What start-up built (modules, configuration, the application) lives as long as the
    # process: frozen, collections no longer walk it.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """Check what a worker would refuse once, prepare the directory, then run the workers."""
    from ._datadir import prepare
    from ._workers import supervise

    config = _with_database(_settings(args), args)
    if args.admin_key_file is not None:
        admin_key_from_file(args.admin_key_file)
    prepare(args.data)
    if config.database.url is None:
        # Workers then open an up-to-date file together (no two of them migrating it at once).
        async def migrate() -> None:
            store = await open_user_store(config, args.data)
            await store.close()

        asyncio.run(migrate())
    return supervise(argv, workers=args.workers, host=args.host, port=args.port, data_dir=args.data)


def serve_main(argv: list[str] | None = None) -> int:
    """Entry point of ``appusers serve``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}, reachable from other machines", file=sys.stderr)
    try:
        if args.workers > 1 and args.worker is None and not args.migrate_only:
            return _supervise(args, argv)
        return asyncio.run(_serve(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DocumentStoreError as exc:
        # The documents' LOCK is held while a server has the directory open.
        print(f"error: cannot start server: data directory {args.data} is in use by another server"
              f" ({exc}); stop it or pass another --data", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot start server: {describe_os_error(exc, args.host, args.port)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def describe_os_error(exc: OSError, host: str, port: int) -> str:
    """What went wrong starting the server, in the caller's terms (no traceback)."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use (pass another --port, or 0 for a free one)"
    if exc.errno == errno.EACCES and exc.filename is None:
        return f"not allowed to listen on {host}:{port} ({exc.strerror}); ports below 1024 need privileges"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine ({exc.strerror})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host} ({exc.strerror})"
    return str(exc)
