"""The ``appusers`` command: sessions kept between runs, for people and scripts.

``serve`` runs the local server, ``admin`` manages its users through the Admin API
(``_cli_admin``), ``demo`` narrates a user's life against a
throwaway one; the other commands (``login``, ``whoami``, ``users``, ``switch``,
``logout``, ``remove``, ``call``, ``custom-data``, ``api-keys``) work on the
session kept in the user's data directory (see ``_cli_session``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from ._cli_errors import EXIT_CODES_HELP, CliError, ExitCode, exit_code_for
from ._cli_output import emit
from ._cli_session import DEFAULT_APP_ID, DEFAULT_LOCAL_URL, SESSION_FILE
from ._version import __version__
from .errors import (
    AppError,
    InvalidPasswordError,
    RefreshTokenRejectedError,
    ServiceError,
    TransportError,
)

__all__ = ["main"]

_DESCRIPTION = "Log in to an App Services-style backend and act as its users from the shell."

_EPILOG = f"""\
Sessions are kept between runs in DIR/{SESSION_FILE} (mode 0600; tokens, never
passwords). DIR is --data-dir, else $APPUSERS_HOME, else $XDG_DATA_HOME/appusers,
else ~/.local/share/appusers. The app id and server come from --app-id/--base-url,
else $APPUSERS_APP_ID/$APPUSERS_BASE_URL, else {DEFAULT_APP_ID!r} at {DEFAULT_LOCAL_URL}
(the defaults of `appusers serve`).

With --json every command prints one JSON document on stdout (on failure:
{{"error": {{"exit_code", "kind", "type", "code", "message"}}}}); messages go to stderr.

examples:
  appusers serve --data ./appusers-data &
  appusers login --email ana@example.com            # prompts for the password
  printf '%s\\n' "$PASSWORD" | appusers login --email ana@example.com --password-stdin
  appusers call sum 2 3
  appusers call echo '{{"$oid": "5f1b2c3d4e5f6a7b8c9d0e1f"}}' '"text"'
  appusers --json users

{EXIT_CODES_HELP}"""


class _Parser(argparse.ArgumentParser):
    """Usage errors become a :class:`CliError` (exit 2), reported like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise CliError(message, ExitCode.USAGE)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after the command name.

    On subcommands they default to SUPPRESS, so an option given before the command
    name is not reset by the subcommand's parser.
    """

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("common options")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="print one machine-readable JSON document on stdout")
    group.add_argument("--debug", action="store_true", default=default(False),
                       help="log requests (never tokens) and show tracebacks")
    group.add_argument("--app-id", metavar="ID", default=default(None),
                       help=f"app id (env APPUSERS_APP_ID; default {DEFAULT_APP_ID!r})")
    group.add_argument("--base-url", metavar="URL", default=default(None),
                       help=f"server URL (env APPUSERS_BASE_URL; default {DEFAULT_LOCAL_URL})")
    group.add_argument("--data-dir", metavar="DIR", default=default(None),
                       help="where the session is kept (default: see 'appusers --help')")
    group.add_argument("--timeout", metavar="SECONDS", type=_positive, default=default(30.0),
                       help="per-request timeout (default 30)")


def _user_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", metavar="USER_ID", default=None,
                        help="act as this logged-in user instead of the current one")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="appusers",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"appusers {__version__}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXIT_CODES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    sub.add_parser("serve", help="run the local App Services-compatible server (see 'serve --help')",
                   add_help=False)
    sub.add_parser("admin", help="manage the server's users through its Admin API (see 'admin --help')",
                   add_help=False)
    demo = command("demo", "start a throwaway local server and walk through a user's life")
    demo.add_argument("--quiet", action="store_true", help="print only the summary line")

    login = command("login", "log in and make that user current")
    how = login.add_mutually_exclusive_group(required=True)
    how.add_argument("--email", metavar="EMAIL",
                     help="email/password; the password is prompted for without echo")
    how.add_argument("--api-key", action="store_true",
                     help="a user or server API key, prompted for without echo")
    how.add_argument("--api-key-stdin", action="store_true", help="a user or server API key, read from stdin")
    how.add_argument("--anonymous", action="store_true", help="anonymous (reuses a logged-in anonymous user)")
    how.add_argument("--jwt", metavar="TOKEN",
                     help="a custom JWT (visible to other local users: prefer --jwt-stdin)")
    how.add_argument("--jwt-stdin", action="store_true", help="a custom JWT, read from stdin")
    login.add_argument("--password-stdin", action="store_true",
                       help="with --email: read the password from the first line of stdin")
    _add_common(login, top=False)

    whoami = command("whoami", "show the current user")
    _user_option(whoami)
    _add_common(whoami, top=False)

    users = command("users", "list the users on this device (* marks the current one)")
    _add_common(users, top=False)

    switch = command("switch", "make another logged-in user current")
    switch.add_argument("user_id", metavar="USER_ID")
    _add_common(switch, top=False)

    logout = command("logout", "log out the current user or USER_ID (anonymous users are removed)")
    logout.add_argument("user_id", metavar="USER_ID", nargs="?", default=None)
    _add_common(logout, top=False)

    remove = command("remove", "log out and forget USER_ID on this device")
    remove.add_argument("user_id", metavar="USER_ID")
    _add_common(remove, top=False)

    call = command("call", "call a backend function; each ARG is (relaxed or canonical) Extended JSON")
    call.add_argument("function", metavar="FUNCTION")
    call.add_argument("args", metavar="ARG", nargs="*", help="e.g. 2, '\"text\"', '{\"$numberLong\": \"5\"}'")
    call.add_argument("--canonical", action="store_true", help="print the result as canonical EJSON")
    _user_option(call)
    _add_common(call, top=False)

    custom = command("custom-data", "show the user's custom data (from the access token)")
    custom.add_argument("--refresh", action="store_true", help="get a fresh access token first")
    custom.add_argument("--canonical", action="store_true", help="print as canonical EJSON")
    _user_option(custom)
    _add_common(custom, top=False)

    keys = command("api-keys", "manage the user's API keys")
    keys_sub = keys.add_subparsers(dest="api_keys_command", metavar="ACTION", required=True,
                                   parser_class=_Parser)
    for name, help_text, arg in (
        ("create", "create a key; the key is printed this once only", "name"),
        ("list", "list the keys (never their secrets)", None),
        ("enable", "enable a key", "key_id"),
        ("disable", "disable a key (logins with it fail)", "key_id"),
        ("delete", "delete a key", "key_id"),
    ):
        action = keys_sub.add_parser(name, help=help_text, description=help_text)
        if arg is not None:
            action.add_argument(arg, metavar="NAME" if arg == "name" else "ID")
        _user_option(action)
        _add_common(action, top=False)
    return parser


def _message(exc: BaseException, base_url: str) -> str:
    """One line for stderr. Error messages never hold secrets (errors.py promises it)."""
    if isinstance(exc, CliError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, TransportError):
        return f"cannot reach the server at {base_url}: {exc}"
    if isinstance(exc, RefreshTokenRejectedError):
        return "the session expired or was revoked; the user was logged out: log in again"
    if isinstance(exc, InvalidPasswordError):
        return f"login failed: {exc}"
    if isinstance(exc, ServiceError):
        code = f" {exc.error_code}" if exc.error_code else ""
        return f"the server answered{code} (HTTP {exc.status}): {exc}"
    if isinstance(exc, AppError):
        return f"{exc} ({exc.code})"
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)"


def _error_code(exc: BaseException) -> str | None:
    """The server's own error code when it sent one (it may have no class of its own),
    else the realm-core name of the error."""
    if isinstance(exc, ServiceError) and exc.error_code:
        return exc.error_code
    return exc.code if isinstance(exc, AppError) else None


def _fail(exc: BaseException, *, json_mode: bool, debug: bool, base_url: str,
          stdout: TextIO, stderr: TextIO) -> int:
    code = exit_code_for(exc)
    message = _message(exc, base_url)
    if debug and not isinstance(exc, KeyboardInterrupt):
        traceback.print_exception(exc, file=stderr)
    stderr.write(f"appusers: error: {message}\n")
    if json_mode:
        error = {
            "exit_code": int(code),
            "kind": code.name.lower(),  # usage, auth, network, server, unexpected, interrupted
            "type": type(exc).__name__,
            "code": _error_code(exc),
            "message": message,
        }
        stdout.write(json.dumps({"error": error}, sort_keys=True) + "\n")
    return int(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``appusers`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        # The server owns its options; `appusers serve --help` shows them.
        from appusers.server._cli import serve_main

        return serve_main(args_list[1:])
    if args_list[:1] == ["admin"]:
        # The Admin API client has its own options (see `appusers admin --help`).
        from ._cli_admin import admin_main

        return admin_main(args_list[1:])
    # Until parsing succeeds, a usage error is reported in the mode the caller asked for.
    json_mode, debug, base_url = "--json" in args_list, "--debug" in args_list, DEFAULT_LOCAL_URL
    try:
        parser = _parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help and --version print and exit 0
            return exc.code if isinstance(exc.code, int) else 0
        json_mode, debug = args.json, args.debug
        if debug:
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                                format="%(levelname)s %(name)s: %(message)s")
        if args.command is None:
            parser.print_usage(sys.stderr)
            raise CliError("a command is required (see 'appusers --help')", ExitCode.USAGE)
        if args.command == "demo":
            from ._demo import run_demo

            return run_demo(quiet=args.quiet)

        from ._cli_session import Settings, prepare, run_session_command

        settings = Settings.from_args(args)
        base_url = settings.base_url
        prepared = prepare(args)  # prompts for secrets before any I/O
        outcome = asyncio.run(run_session_command(args, settings, prepared, stderr=sys.stderr))
    except (Exception, KeyboardInterrupt) as exc:
        return _fail(exc, json_mode=json_mode, debug=debug, base_url=base_url,
                     stdout=sys.stdout, stderr=sys.stderr)
    emit(outcome, json_mode=json_mode)
    return 0
