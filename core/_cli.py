"""The ``appusers`` command: ``serve`` (the local server) and ``demo`` (a user's life, narrated)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appusers", description=__doc__)
    parser.add_argument("--version", action="version", version=f"appusers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the local App Services-compatible server", add_help=False)
    demo = sub.add_parser("demo", help="start a throwaway local server and walk through a user's life")
    demo.add_argument("--quiet", action="store_true", help="print only the summary line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        # The server owns its options; `appusers serve --help` shows them.
        from appusers.server._cli import serve_main

        return serve_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(quiet=args.quiet)
    _parser().print_help()
    return 2
