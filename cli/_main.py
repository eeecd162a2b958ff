"""The ``appusers`` command, on click: sessions kept between runs, for people and scripts.

``serve`` runs the local server, ``admin`` manages its users through the Admin API
(``_admin``), ``demo`` narrates a user's life against a throwaway one, ``config``
prints or checks server settings; the other commands (``login``, ``register``,
``whoami``, ``users``, ``switch``...) work on the session kept in the user's data
directory (see ``_session``).

click gives the subcommands, ``--help`` and shell completion; what it does not do the
way scripts need is done here: every failure, usage errors included, ends in one
line ``appusers: error: ...`` on stderr (plus a JSON document with ``--json``) and
an exit code of :class:`~._errors.ExitCode`; the common options are accepted
before and after the command name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, TextIO, TypeVar

import click

from appusers._version import __version__
from appusers.errors import (
    AppError,
    InvalidPasswordError,
    RefreshTokenRejectedError,
    ServiceError,
    TransportError,
)

from ._admin import admin_cli, run_admin
from ._click import CONTEXT as _CONTEXT
from ._click import Command as _Command
from ._click import Group as _Group
from ._errors import EXIT_CODES_HELP, CliError, ExitCode, exit_code_for
from ._output import Outcome, emit
from ._session import DEFAULT_APP_ID, DEFAULT_LOCAL_URL, SESSION_FILE

__all__ = ["cli", "main"]

_F = TypeVar("_F", bound=Callable[..., Any])

_DESCRIPTION = "Log in to an App Services-style backend and act as its users from the shell."

_EPILOG = f"""\
Sessions are kept between runs in DIR/{SESSION_FILE} (mode 0600; tokens, never
passwords), one set of users per server URL and app id. DIR is --data-dir, else
$APPUSERS_HOME, else $XDG_DATA_HOME/appusers, else ~/.local/share/appusers. The app
id and server come from --app-id/--base-url, else $APPUSERS_APP_ID/$APPUSERS_BASE_URL,
else {DEFAULT_APP_ID!r} at {DEFAULT_LOCAL_URL} (the defaults of `appusers serve`).

With --json every command prints one JSON document on stdout (on failure:
{{"error": {{"exit_code", "kind", "type", "code", "message"}}}}); messages go to stderr.

Shell completion: eval "$(_APPUSERS_COMPLETE=bash_source appusers)" (zsh_source,
fish_source for those shells).

examples:
  appusers serve --data ./appusers-data &
  appusers register --email ana@example.com          # prompts for the password
  appusers confirm --email ana@example.com --from-outbox ./appusers-data
  appusers login --email ana@example.com
  printf '%s\\n' "$PASSWORD" | appusers login --email ana@example.com --password-stdin
  appusers call sum 2 3
  appusers call echo '{{"$oid": "5f1b2c3d4e5f6a7b8c9d0e1f"}}' '"text"'
  appusers --json users

{EXIT_CODES_HELP}"""


# -- the common options: before or after the command name ---------------------------------------

_COMMON_FLAGS = ("json", "debug", "allow_insecure_http")
_COMMON_VALUES = ("app_id", "base_url", "data_dir", "timeout")


def _common(function: _F) -> _F:
    """The options every command takes. On a command they default to None, so one given
    before the command name (on the group) is not reset by the command's own parser."""
    options = [
        click.option("--json", "json_", is_flag=True, default=None,
                     help="print one machine-readable JSON document on stdout"),
        click.option("--debug", is_flag=True, default=None,
                     help="log requests (never tokens) and show tracebacks"),
        click.option("--app-id", metavar="ID", default=None,
                     help=f"app id (env APPUSERS_APP_ID; default {DEFAULT_APP_ID!r})"),
        click.option("--base-url", metavar="URL", default=None,
                     help=f"server URL (env APPUSERS_BASE_URL; default {DEFAULT_LOCAL_URL})"),
        click.option("--data-dir", metavar="DIR", default=None,
                     help="where the session is kept (default: see 'appusers --help')"),
        click.option("--timeout", metavar="SECONDS", default=None,
                     type=click.FloatRange(min=0, min_open=True), help="per-request timeout (default 30)"),
        click.option("--allow-insecure-http", is_flag=True, default=None,
                     help="allow plain http:// to a server that is not on this machine "
                          "(tokens and passwords travel unencrypted)"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _merge(ctx: click.Context, /, given: dict[str, Any]) -> SimpleNamespace:
    """The command's options over the group's (``ctx.obj``), over the defaults."""
    top: dict[str, Any] = ctx.find_root().obj or {}
    given = dict(given)
    given["json"] = given.pop("json_", None)
    merged: dict[str, Any] = {}
    for name in _COMMON_FLAGS:
        merged[name] = bool(given.pop(name, None) or top.get(name))
    for name in _COMMON_VALUES:
        value = given.pop(name, None)
        merged[name] = value if value is not None else top.get(name)
    if merged["timeout"] is None:
        merged["timeout"] = 30.0
    merged.update(given)
    return SimpleNamespace(**merged)


def _user_option(function: _F) -> _F:
    return click.option("--user", metavar="USER", default=None,
                        help="act as this logged-in user (id, id prefix or email) instead of the current one"
                        )(function)


def _command(group: click.Group, name: str, help_text: str, *, negative_numbers: bool = False,
             dash_arguments: bool = False, **kwargs: Any) -> Callable[[_F], _F]:
    # negative_numbers: "-1.5" is an argument, not an unknown option (as argparse had it).
    # dash_arguments: any "-..." that is not an option is an argument (base64url tokens may start
    # with "-"); no short options at all then, or click would take "-Uh7..." apart as -U -h -7.
    settings: dict[str, Any] = _CONTEXT
    if negative_numbers or dash_arguments:
        settings = {**_CONTEXT, "ignore_unknown_options": True}
    if dash_arguments:
        settings["help_option_names"] = ["--help"]

    def decorate(function: _F) -> _F:
        command = group.command(name, cls=_Command, help=help_text, short_help=help_text,
                                epilog=EXIT_CODES_HELP, context_settings=settings, **kwargs)
        return command(_common(function))  # type: ignore[return-value]

    return decorate


# -- the group ------------------------------------------------------------------------------------


@click.group(cls=_Group, context_settings=_CONTEXT, help=_DESCRIPTION, epilog=_EPILOG,
             invoke_without_command=True, no_args_is_help=False)
@click.version_option(__version__, "--version", prog_name="appusers", message="%(prog)s %(version)s")
@_common
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    ctx.obj = {("json" if k == "json_" else k): v for k, v in options.items()}
    if ctx.invoked_subcommand is None:
        raise click.UsageError("a command is required (see 'appusers --help')", ctx)


@cli.command("serve", cls=_Command, add_help_option=False,
             context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
             short_help="run the local App Services-compatible server (see 'serve --help')")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def _serve(argv: tuple[str, ...]) -> int:
    """Run the local App Services-compatible server (its options: 'appusers serve --help')."""
    return serve(list(argv))


# `appusers admin ...` is handed to admin_main (main below); registered here for --help and completion.
cli.add_command(admin_cli)


def serve(argv: list[str]) -> int:
    """``appusers serve ARGV``: the server's own parser, once its extra is known to be installed."""
    from ._extras import require_server

    require_server()
    try:
        from appusers.server._cli import serve_main
    except ModuleNotFoundError as exc:  # a dependency of the extra that find_spec did not cover
        raise CliError(f'the local server needs the server extra: pip install "appusers[server]" '
                       f"(missing: {exc.name})", ExitCode.NOT_INSTALLED) from None
    return serve_main(argv)


@_command(cli, "demo", "start a throwaway local server and walk through a user's life")
@click.option("--quiet", is_flag=True, help="print only the summary line")
@click.pass_context
def _demo(ctx: click.Context, /, **options: Any) -> int:
    args = _merge(ctx, options)
    from ._extras import require_server

    require_server()
    from ._demo import run_demo

    return run_demo(quiet=args.quiet)


@cli.group("config", cls=_Group, context_settings=_CONTEXT,
           short_help="the local server's settings file: print an example, check one")
def _config() -> None:
    """The local server's settings file (TOML): print a complete example, check one."""


@_command(_config, "example", "print a complete, commented settings file (every key, its default)")
@click.pass_context
def _config_example(ctx: click.Context, /, **options: Any) -> Outcome:
    return Outcome({"example": (text := example_config())}, text.rstrip("\n"))


def example_config() -> str:
    """``server/example.toml`` as installed (package data of ``appusers.server``).

    Found without importing ``appusers.server``, so it prints without the server extra."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("appusers.server")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        path = Path(location) / "example.toml"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise CliError("server/example.toml is not installed with this appusers (a broken install?)",
                   ExitCode.NOT_INSTALLED)


@_command(_config, "check", "read a settings file as 'appusers serve --config FILE' would (exit 2 if wrong)")
@click.argument("path", metavar="FILE", type=click.Path())  # the loader says what is wrong with it
@click.pass_context
def _config_check(ctx: click.Context, /, path: str, **options: Any) -> Outcome:
    from ._extras import require_server

    require_server()
    from appusers.server._config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    return Outcome({"path": path, "app_id": config.app_id}, f"{path}: ok (app id {config.app_id!r})")


# -- session commands -----------------------------------------------------------------------------


def _run_session(ctx: click.Context, /, args: SimpleNamespace) -> Outcome:
    from ._session import Settings, prepare, run_session_command

    settings = Settings.from_args(args)
    ctx.meta["appusers.base_url"] = settings.base_url
    prepared = prepare(args)  # prompts for secrets before any I/O
    return asyncio.run(run_session_command(args, settings, prepared, stderr=sys.stderr))


def _credential_options(function: _F, *, anonymous: bool) -> _F:
    options = [
        click.option("--email", metavar="EMAIL", default=None,
                     help="email/password; the password is prompted for without echo"),
        click.option("--password-stdin", is_flag=True,
                     help="with --email: read the password from the first line of stdin"),
        click.option("--api-key", is_flag=True, help="a user or server API key, prompted for without echo"),
        click.option("--api-key-stdin", is_flag=True, help="a user or server API key, read from stdin"),
        click.option("--jwt", metavar="TOKEN", default=None,
                     help="a custom JWT (visible to other local users: prefer --jwt-stdin)"),
        click.option("--jwt-stdin", is_flag=True, help="a custom JWT, read from stdin"),
    ]
    if anonymous:
        options.insert(2, click.option("--anonymous", is_flag=True,
                                       help="anonymous (reuses a logged-in anonymous user)"))
    for option in reversed(options):
        function = option(function)
    return function


def _one_way(args: SimpleNamespace, *, anonymous: bool) -> None:
    ways = ["--email", "--api-key", "--api-key-stdin", "--jwt", "--jwt-stdin"]
    if anonymous:
        ways.insert(1, "--anonymous")
    chosen = [w for w in ways if getattr(args, w[2:].replace("-", "_"), None) not in (None, False)]
    if len(chosen) != 1:
        given = f" (given: {' '.join(chosen)})" if chosen else ""
        raise CliError(f"choose exactly one of {', '.join(ways)}{given}", ExitCode.USAGE)


def _login_options(function: _F) -> _F:
    return _credential_options(function, anonymous=True)


def _link_options(function: _F) -> _F:
    return _credential_options(function, anonymous=False)


def _define_session_commands() -> None:
    def command(name: str, help_text: str, *params: Callable[[Any], Any],
                group: click.Group = cli, check: Callable[[SimpleNamespace], None] | None = None,
                command_name: str | None = None, negative_numbers: bool = False,
                dash_arguments: bool = False) -> None:
        key = command_name or name

        @click.pass_context
        def run(ctx: click.Context, /, **options: Any) -> Outcome:
            args = _merge(ctx, options)
            args.command = key
            if check is not None:
                check(args)
            return _run_session(ctx, args)

        function: Any = run
        for param in reversed(params):
            function = param(function)
        _command(group, name, help_text, negative_numbers=negative_numbers,
                 dash_arguments=dash_arguments)(function)

    user = _user_option
    canonical = click.option("--canonical", is_flag=True, help="print as canonical Extended JSON")
    email = click.option("--email", metavar="EMAIL", required=True, help="the account's email address")
    password_stdin = click.option("--password-stdin", is_flag=True,
                                  help="read the password from the first line of stdin (else: prompted)")
    from_outbox = click.option(
        "--from-outbox", metavar="DIR", default=None,
        help="take the token from the outbox of a local server with data directory DIR "
             "(appusers serve --data DIR; needs --email)")
    token_args = (click.argument("token", metavar="TOKEN", required=False),
                  click.argument("token_id", metavar="TOKEN_ID", required=False))

    def tokens_or_outbox(args: SimpleNamespace) -> None:
        if args.from_outbox is not None:
            if args.token is not None:
                raise CliError("give TOKEN TOKEN_ID or --from-outbox, not both", ExitCode.USAGE)
            if args.email is None:
                raise CliError("--from-outbox needs --email (whose message to take)", ExitCode.USAGE)
        elif args.token is None or args.token_id is None:
            raise CliError("give TOKEN and TOKEN_ID (from the email) or --email EMAIL --from-outbox DIR",
                           ExitCode.USAGE)

    command("login", "log in and make that user current", _login_options,
            check=lambda a: _one_way(a, anonymous=True))
    command("register", "register an email/password account (then confirm it)", email, password_stdin)
    command("confirm", "confirm a registered account with the token and token id of its email",
            *token_args, click.option("--email", metavar="EMAIL", default=None,
                                      help="with --from-outbox: the account's email address"),
            from_outbox, check=tokens_or_outbox, dash_arguments=True)
    command("resend-confirmation", "send the confirmation email again", email)
    command("whoami", "show the current user", user)
    command("users", "list the users on this device (* marks the current one)")
    command("switch", "make another logged-in user current",
            click.argument("user_id", metavar="USER"))
    command("logout", "log out the current user or USER (anonymous users are removed)",
            click.argument("user_id", metavar="USER", required=False))
    command("remove", "log out and forget USER on this device", click.argument("user_id", metavar="USER"))
    command("link", "link another identity (email/password, API key, JWT) to the user", _link_options, user,
            check=lambda a: _one_way(a, anonymous=False))
    command("profile", "show the user's profile and identities, fetched fresh from the server", user)
    command("call", "call a backend function; each ARG is (relaxed or canonical) Extended JSON",
            click.argument("function", metavar="FUNCTION"),
            click.argument("args", metavar="[ARG]...", nargs=-1),
            click.option("--canonical", is_flag=True, help="print the result as canonical EJSON"), user,
            negative_numbers=True)
    command("custom-data", "show the user's custom data (from the access token)",
            click.option("--refresh", is_flag=True, help="get a fresh access token first"), canonical, user)

    @cli.group("reset-password", cls=_Group, context_settings=_CONTEXT,
               short_help="reset a forgotten password: send the email, then confirm with its token")
    def reset_password() -> None:
        """Reset a forgotten password: 'send' the email, then 'confirm' with its token and a new password."""

    command("send", "send the password reset email", email, group=reset_password,
            command_name="reset-password send")
    command("confirm", "set a new password with the token and token id of the reset email",
            *token_args, click.option("--email", metavar="EMAIL", default=None,
                                      help="with --from-outbox: the account's email address"),
            from_outbox, password_stdin, group=reset_password, command_name="reset-password confirm",
            check=tokens_or_outbox, dash_arguments=True)

    @cli.group("api-keys", cls=_Group, context_settings=_CONTEXT, short_help="manage the user's API keys")
    def api_keys() -> None:
        """Manage the user's API keys."""

    for action, help_text, arg in (
        ("create", "create a key; the key is printed this once only", "name"),
        ("list", "list the keys (never their secrets)", None),
        ("enable", "enable a key", "key_id"),
        ("disable", "disable a key (logins with it fail)", "key_id"),
        ("delete", "delete a key", "key_id"),
    ):
        params: list[Callable[[Any], Any]] = [user]
        if arg is not None:
            params.insert(0, click.argument(arg, metavar="NAME" if arg == "name" else "ID"))
        command(action, help_text, *params, group=api_keys, command_name=f"api-keys {action}")


_define_session_commands()


# -- failures -------------------------------------------------------------------------------------

_RETRY_IN = re.compile(r"retry in (\d+) s")


def _message(exc: BaseException, settings: SimpleNamespace) -> str:
    """One line for stderr that names the cause. Error messages never hold secrets
    (errors.py promises it)."""
    base_url = settings.base_url
    if isinstance(exc, CliError):
        return exc.message
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, KeyboardInterrupt | click.Abort):
        return "interrupted"
    if isinstance(exc, TransportError):
        return f"cannot reach the server at {base_url}: {exc}"
    if isinstance(exc, RefreshTokenRejectedError):
        return "the session expired or was revoked; the user was logged out: log in again"
    if isinstance(exc, InvalidPasswordError):
        verb = "linking" if settings.command == "link" else "login"
        return f"{verb} failed: invalid {settings.credential}"
    if isinstance(exc, ServiceError):
        if exc.status == 429:
            wait = _RETRY_IN.search(str(exc))
            after = f"wait {wait.group(1)} s" if wait else "wait a moment"
            after += " before trying again"
            return f"throttled by the server: {after} ({exc})"
        if exc.error_code == "AppNotFound":
            return (f"unknown app id {settings.app_id!r}: the server at {base_url} has no such app "
                    "(check --app-id or $APPUSERS_APP_ID)")
        code = f" {exc.error_code}" if exc.error_code else ""
        return f"the server answered{code} (HTTP {exc.status}): {exc}"
    if isinstance(exc, AppError):
        # The transport's advice names its keyword argument; here it is an option.
        return f"{exc} ({exc.code})".replace("allow_insecure_http=True", "--allow-insecure-http")
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)"


def _error_code(exc: BaseException) -> str | None:
    """The server's own error code when it sent one (it may have no class of its own),
    else the realm-core name of the error."""
    if isinstance(exc, ServiceError) and exc.error_code:
        return exc.error_code
    return exc.code if isinstance(exc, AppError) else None


def _exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, click.ClickException):
        return ExitCode.USAGE
    if isinstance(exc, click.Abort):
        return ExitCode.INTERRUPTED
    return exit_code_for(exc)


def _fail(exc: BaseException, *, settings: SimpleNamespace, stdout: TextIO, stderr: TextIO) -> int:
    code = _exit_code(exc)
    message = _message(exc, settings)
    if settings.debug and not isinstance(exc, KeyboardInterrupt | click.ClickException | click.Abort):
        traceback.print_exception(exc, file=stderr)
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        stderr.write(exc.ctx.get_usage() + "\n")
    stderr.write(f"appusers: error: {message}\n")
    if settings.json:
        error: dict[str, Any] = {
            "exit_code": int(code),
            # usage, auth, network, server, throttled, unknown_app, not_installed, unexpected, interrupted
            "kind": code.name.lower(),
            "type": type(exc).__name__,
            "code": _error_code(exc),
            "message": message,
        }
        if code is ExitCode.THROTTLED:
            wait = _RETRY_IN.search(str(exc))
            error["retry_after"] = int(wait.group(1)) if wait else None
        stdout.write(json.dumps({"error": error}, sort_keys=True) + "\n")
    return int(code)


def _given(args_list: list[str]) -> SimpleNamespace:
    """What the raw arguments say about reporting, for failures before parsing is done."""
    def value(flag: str) -> str | None:
        for i, arg in enumerate(args_list):
            if arg == flag and i + 1 < len(args_list):
                return args_list[i + 1]
            if arg.startswith(flag + "="):
                return arg.partition("=")[2]
        return None

    import os

    credential = "username/password"
    if any(a.startswith("--api-key") for a in args_list):
        credential = "API key"
    elif any(a.startswith("--jwt") for a in args_list):
        credential = "token (JWT)"
    return SimpleNamespace(
        command=args_list[0] if args_list else None, credential=credential,
        json="--json" in args_list, debug="--debug" in args_list,
        base_url=value("--base-url") or os.environ.get("APPUSERS_BASE_URL") or DEFAULT_LOCAL_URL,
        app_id=value("--app-id") or os.environ.get("APPUSERS_APP_ID") or DEFAULT_APP_ID,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``appusers`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # The server and the Admin API client own their options (see their --help); given first,
    # they are handed over untouched.
    settings = _given(args_list)
    try:
        if args_list[:1] == ["serve"]:
            return serve(args_list[1:])
        if args_list[:1] == ["admin"]:
            from ._admin import admin_main

            return admin_main(args_list[1:])
        if settings.debug:
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                                format="%(levelname)s %(name)s: %(message)s")
        outcome = cli.main(args_list, prog_name="appusers", standalone_mode=False)
    except (Exception, KeyboardInterrupt, click.Abort) as exc:
        return _fail(exc, settings=settings, stdout=sys.stdout, stderr=sys.stderr)
    if isinstance(outcome, Outcome):
        emit(outcome, json_mode=settings.json)
        return 0
    if isinstance(outcome, SimpleNamespace) and getattr(outcome, "admin", False):
        return run_admin(outcome)  # `appusers --json admin ...`: options before `admin`
    # --help / --version (click returns their exit status) and the delegated commands' codes.
    return outcome if isinstance(outcome, int) else 0
