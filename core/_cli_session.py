"""The session commands of ``appusers``: log in, inspect and switch users, call functions, API keys.

Each run opens an :class:`App` on a :class:`~appusers.adapters.FileStorage` in the
user's data directory, so the users logged in by one run are there for the next;
the file holds tokens (it is created 0600) and never a password.

Secrets are read before anything else happens and only from places that do not
echo them or leave them in the shell history: the terminal with echo off
(``getpass``) or the first line of stdin (``--password-stdin`` and friends).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import attrs

from . import _ejson
from ._app import App
from ._cli_errors import CliError, ExitCode, exit_code_for
from ._cli_output import Outcome, ejson_text, ejson_value, state_word, user_line, user_summary, user_text
from ._credentials import Credentials
from ._models import UserState
from ._user import User
from .errors import AppError

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_LOCAL_URL",
    "SESSION_FILE",
    "Settings",
    "default_data_dir",
    "prepare",
    "run_session_command",
]

DEFAULT_APP_ID = "appusers-local"
DEFAULT_LOCAL_URL = "http://127.0.0.1:9090"  # where `appusers serve` listens by default
SESSION_FILE = "session.json"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$APPUSERS_HOME``, else ``$XDG_DATA_HOME/appusers``, else ``~/.local/share/appusers``."""
    env = os.environ if environ is None else environ
    home = env.get("APPUSERS_HOME")
    if home:
        return Path(home).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore relative paths
        return Path(xdg) / "appusers"
    return Path.home() / ".local" / "share" / "appusers"


@attrs.frozen
class Settings:
    """Where the session lives and which server it talks to."""

    app_id: str
    base_url: str
    data_dir: Path
    timeout: float

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir(env)
        return cls(
            app_id=args.app_id or env.get("APPUSERS_APP_ID") or DEFAULT_APP_ID,
            base_url=args.base_url or env.get("APPUSERS_BASE_URL") or DEFAULT_LOCAL_URL,
            data_dir=data_dir,
            timeout=args.timeout,
        )

    @property
    def session_path(self) -> Path:
        return self.data_dir / SESSION_FILE


# -- reading secrets ------------------------------------------------------------------------------


def read_secret(what: str, *, from_stdin: bool, stdin_flag: str, stdin: TextIO | None = None) -> str:
    """A secret from the first line of stdin, or typed at the terminal with echo off.

    Without a terminal getpass would fall back to reading stdin *with* echo and a
    warning; that is refused, pointing at the ``--...-stdin`` option instead.
    """
    if from_stdin:
        stream = sys.stdin if stdin is None else stdin
        line = stream.readline()
        secret = line.rstrip("\r\n") if line.endswith("\n") else line
        if not secret:
            raise CliError(f"no {what} on stdin (expected it on the first line)", ExitCode.USAGE)
        return secret
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            secret = getpass.getpass(f"{what.capitalize()}: ")
        except getpass.GetPassWarning:
            raise CliError(
                f"cannot read the {what} without echo (no terminal); pipe it in with {stdin_flag}",
                ExitCode.USAGE,
            ) from None
        except EOFError:
            raise CliError(f"no {what} given", ExitCode.USAGE) from None
    if not secret:
        raise CliError(f"no {what} given", ExitCode.USAGE)
    return secret


def _credentials(args: argparse.Namespace) -> Credentials:
    if args.password_stdin and args.email is None:
        raise CliError("--password-stdin goes with --email", ExitCode.USAGE)
    if args.anonymous:
        return Credentials.anonymous()
    if args.email is not None:
        password = read_secret("password", from_stdin=args.password_stdin, stdin_flag="--password-stdin")
        return Credentials.email_password(args.email, password)
    if args.api_key or args.api_key_stdin:
        key = read_secret("API key", from_stdin=args.api_key_stdin, stdin_flag="--api-key-stdin")
        return Credentials.api_key(key)
    if args.jwt_stdin:
        return Credentials.jwt(read_secret("JWT", from_stdin=True, stdin_flag="--jwt-stdin"))
    if args.jwt is not None:
        return Credentials.jwt(args.jwt)
    raise CliError("choose how to log in: --email, --api-key, --anonymous or --jwt", ExitCode.USAGE)


def _call_arguments(raw: list[str]) -> list[Any]:
    values = []
    for position, text in enumerate(raw, start=1):
        try:
            values.append(_ejson.loads(text))
        except Exception as exc:  # json's ValueError and bson's InvalidId, TypeError...
            raise CliError(
                f"argument {position} is not valid JSON/Extended JSON ({type(exc).__name__}: {exc}); "
                "strings need JSON quotes, e.g. '\"text\"'",
                ExitCode.USAGE,
            ) from None
    return values


def prepare(args: argparse.Namespace) -> Any:
    """Everything a command needs from the caller, before any file or network I/O:
    the credentials of ``login`` (prompting if needed), the arguments of ``call``."""
    if args.command == "login":
        return _credentials(args)
    if args.command == "call":
        return _call_arguments(args.args)
    return None


# -- the App of one run ---------------------------------------------------------------------------


@asynccontextmanager
async def open_app(settings: Settings, *, stderr: TextIO) -> AsyncIterator[App]:
    """An App on the session file, with its background saves finished before it closes."""
    from appusers.adapters import FileStorage

    app = App(
        settings.app_id,
        base_url=settings.base_url,
        storage=FileStorage(settings.session_path),
        timeout=settings.timeout,
    )
    try:
        await app.open()
        for issue in app.storage_issues:
            stderr.write(f"warning: session file repaired: {issue.kind} ({issue.detail})\n")
        yield app
    finally:
        try:
            await _settle(app, settings.timeout)
        finally:
            await app.aclose()


async def _settle(app: App, timeout: float) -> None:
    # The App finishes some work in background tasks (switch_user's save, revoking the
    # session of a log-in that failed half-way); aclose would cancel them, and the next
    # run would not see the switch. Bounded, so a dead server cannot hold the exit.
    deadline = asyncio.get_running_loop().time() + timeout
    while app._tasks:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return
        await asyncio.wait(list(app._tasks), timeout=remaining)


def _known_user(app: App, user_id: str) -> User:
    user = app.all_users.get(user_id)
    if user is None:
        raise CliError(f"unknown user id {user_id!r} (see 'appusers users')", ExitCode.USAGE)
    return user


def _acting_user(app: App, user_id: str | None) -> User:
    if user_id is not None:
        user = _known_user(app, user_id)
        if not user.is_logged_in:
            raise CliError(f"user {user_id} is logged out: log in again", ExitCode.AUTH)
        return user
    current = app.current_user
    if current is None:
        raise CliError("not logged in: run 'appusers login' first", ExitCode.AUTH)
    return current


# -- commands -------------------------------------------------------------------------------------


async def _login(app: App, args: argparse.Namespace, credentials: Credentials) -> Outcome:
    user = await app.log_in(credentials)
    summary = user_summary(user, current=app.current_user)
    who = f" ({summary['email']})" if summary["email"] else " (anonymous)" if summary["anonymous"] else ""
    return Outcome({"user": summary}, f"logged in as {user.id}{who}")


async def _whoami(app: App, args: argparse.Namespace, _: Any) -> Outcome:
    summary = user_summary(_acting_user(app, args.user), current=app.current_user)
    return Outcome({"user": summary}, user_text(summary))


async def _users(app: App, args: argparse.Namespace, _: Any) -> Outcome:
    current = app.current_user
    summaries = [user_summary(u, current=current) for u in app.all_users.values()]
    text = "\n".join(user_line(s) for s in summaries) if summaries else "no users on this device"
    return Outcome({"current": None if current is None else current.id, "users": summaries}, text)


async def _switch(app: App, args: argparse.Namespace, _: Any) -> Outcome:
    user = _known_user(app, args.user_id)
    app.switch_user(user)
    return Outcome({"user": user_summary(user, current=app.current_user)}, f"switched to {user.id}")


async def _end(app: App, user: User, action: Callable[[], Awaitable[None]], verb: str) -> Outcome:
    """Run a log-out or removal: the local part always stands, so a failure to tell the
    server is reported as such (with its own exit code)."""
    try:
        await action()
    except AppError as exc:
        if user.state is UserState.LOGGED_IN:
            raise
        raise CliError(
            f"{user.id} {verb} on this device, but the server could not be told: {exc}",
            exit_code_for(exc),
        ) from exc
    gone = user.state is UserState.REMOVED
    text = f"{user.id} {state_word(user.state)}"
    if gone and verb == "logged out":
        text += " (anonymous users are removed at log-out)"
    return Outcome({"user_id": user.id, "state": user.state.value}, text)


async def _logout(app: App, args: argparse.Namespace, _: Any) -> Outcome:
    if args.user_id is not None:
        user = _known_user(app, args.user_id)
    else:
        current = app.current_user
        if current is None:
            return Outcome({"user_id": None, "state": None}, notes=("nobody is logged in",))
        user = current
    if not user.is_logged_in:
        return Outcome({"user_id": user.id, "state": user.state.value},
                       notes=(f"{user.id} is already logged out",))
    return await _end(app, user, lambda: app.log_out(user), "logged out")


async def _remove(app: App, args: argparse.Namespace, _: Any) -> Outcome:
    user = _known_user(app, args.user_id)
    return await _end(app, user, lambda: app.remove_user(user), "removed")


async def _call(app: App, args: argparse.Namespace, arguments: list[Any]) -> Outcome:
    user = _acting_user(app, args.user)
    result = await user.call_function(args.function, *arguments)
    return Outcome(
        {"function": args.function, "result": ejson_value(result, canonical=args.canonical)},
        ejson_text(result, canonical=args.canonical),
    )


async def _custom_data(app: App, args: argparse.Namespace, _: Any) -> Outcome:
    user = _acting_user(app, args.user)
    data = await user.refresh_custom_data() if args.refresh else user.custom_data
    return Outcome(
        {"user_id": user.id, "custom_data": ejson_value(dict(data), canonical=args.canonical)},
        ejson_text(dict(data), canonical=args.canonical),
    )


async def _api_keys(app: App, args: argparse.Namespace, _: Any) -> Outcome:
    user = _acting_user(app, args.user)
    keys = user.api_keys
    action = args.api_keys_command
    if action == "create":
        key = await keys.create(args.name)
        described = {"id": key.id, "name": key.name, "disabled": key.disabled}
        note = f"created API key {key.name!r} (id {key.id}); the key is shown only this once:"
        # The one place a secret is printed: the caller asked for it and cannot get it again.
        return Outcome({"user_id": user.id, "api_key": {**described, "key": key.key}}, key.key or "", (note,))
    if action == "list":
        listed = [{"id": k.id, "name": k.name, "disabled": k.disabled} for k in await keys.fetch_all()]
        lines = [f"{k['id']}  {'disabled' if k['disabled'] else 'enabled ':<8}  {k['name']}" for k in listed]
        return Outcome({"user_id": user.id, "api_keys": listed}, "\n".join(lines) or "no API keys")
    key_id = args.key_id
    if action == "enable":
        await keys.enable(key_id)
    elif action == "disable":
        await keys.disable(key_id)
    else:
        await keys.delete(key_id)
    done = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}[action]
    return Outcome({"user_id": user.id, "api_key_id": key_id, "action": done}, f"{done} API key {key_id}")


_Command = Callable[[App, argparse.Namespace, Any], Awaitable[Outcome]]

COMMANDS: Mapping[str, _Command] = {
    "login": _login,
    "whoami": _whoami,
    "users": _users,
    "switch": _switch,
    "logout": _logout,
    "remove": _remove,
    "call": _call,
    "custom-data": _custom_data,
    "api-keys": _api_keys,
}


async def run_session_command(
    args: argparse.Namespace, settings: Settings, prepared: Any, *, stderr: TextIO
) -> Outcome:
    """Run the session command ``args.command`` on the session in ``settings.data_dir``."""
    command = COMMANDS[args.command]
    async with open_app(settings, stderr=stderr) as app:
        return await command(app, args, prepared)
