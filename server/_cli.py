"""``appusers serve``: run the local server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import attrs

from ._config import ConfigError, admin_key_from_file, load_config
from ._server import LocalServer

__all__ = ["serve_main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="appusers serve", description="Run the local App Services-compatible server."
    )
    p.add_argument("--config", type=Path, default=None, help="TOML settings file (default: demo settings)")
    p.add_argument(
        "--data", type=Path, default=Path("appusers-data"), help="data directory (default ./appusers-data)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=9090, help="port (default 9090; 0 picks a free one)")
    p.add_argument("--admin-token", default=None, help="enable /_appusers/admin/* test hooks with this token")
    p.add_argument(
        "--admin-key-file",
        type=Path,
        default=None,
        help="serve the Admin API (/api/admin/v3.0) to this key pair: a JSON file"
        ' {"public_key", "private_key"}, e.g. from `appusers admin create-key FILE`',
    )
    return p


async def _serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.admin_key_file is not None:
        key = admin_key_from_file(args.admin_key_file)
        config = attrs.evolve(config, admin=attrs.evolve(config.admin, keys=(*config.admin.keys, key)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    async with LocalServer(
        config=config, data_dir=args.data, host=args.host, port=args.port, admin_token=args.admin_token
    ) as server:
        print(f"appusers server: {server.url}  app id: {server.app_id}  data: {server.data_dir}", flush=True)
        if config.admin.enabled:
            print(
                f"admin api: {server.url}/api/admin/v3.0  group id: {server.group_id}"
                f"  app _id: {server.app_object_id}",
                flush=True,
            )
        if config.functions_module is not None:
            print(f"functions: {config.functions_module}", flush=True)
        await stop.wait()
        print("stopping", flush=True)
    return 0


def serve_main(argv: list[str] | None = None) -> int:
    """Entry point of ``appusers serve``; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}, reachable from other machines", file=sys.stderr)
    try:
        return asyncio.run(_serve(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot start server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
