"""The session commands of ``appusers``: log in, inspect and switch users, call functions, API keys.

Each run opens an :class:`App` on a :class:`~appusers.adapters.FileStorage` in the
user's data directory, so the users logged in by one run are there for the next;
the file holds tokens (it is created 0600) and never a password.

Secrets are read before anything else happens and only from places that do not
echo them or leave them in the shell history: the terminal with echo off
(``getpass``) or the first line of stdin (``--password-stdin`` and friends).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import attrs

from appusers import _ejson
from appusers._app import App
from appusers._credentials import Credentials
from appusers._models import UserState
from appusers._user import User
from appusers.errors import AppError

from ._errors import CliError, ExitCode, exit_code_for
from ._output import Outcome, ejson_text, ejson_value, state_word, user_line, user_summary, user_text

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
    allow_insecure_http: bool = False

    @classmethod
    def from_args(cls, args: SimpleNamespace, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir(env)
        return cls(
            app_id=args.app_id or env.get("APPUSERS_APP_ID") or DEFAULT_APP_ID,
            base_url=args.base_url or env.get("APPUSERS_BASE_URL") or DEFAULT_LOCAL_URL,
            data_dir=data_dir,
            timeout=args.timeout,
            allow_insecure_http=bool(getattr(args, "allow_insecure_http", False)),
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


def _credentials(args: SimpleNamespace) -> Credentials:
    if args.password_stdin and args.email is None:
        raise CliError("--password-stdin goes with --email", ExitCode.USAGE)
    if getattr(args, "anonymous", False):
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


def _new_password(args: SimpleNamespace) -> str:
    return read_secret("password", from_stdin=args.password_stdin, stdin_flag="--password-stdin")


def outbox_token(data_dir: str, email: str, kind: str) -> tuple[str, str]:
    """The token and token id of the newest ``kind`` email (``confirm``/``reset``) to ``email``
    in the outbox of a local server whose data directory is ``data_dir``."""
    path = Path(data_dir).expanduser()
    if path.is_dir():
        path = path / "outbox.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CliError(f"no outbox at {path}: give the data directory of 'appusers serve --data DIR'",
                       ExitCode.USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the outbox {path}: {type(exc).__name__}: {exc}",
                       ExitCode.USAGE) from None
    wanted = email.strip().lower()
    for line in reversed(lines):
        try:
            mail = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: the others still count
        if (isinstance(mail, dict) and str(mail.get("email", "")).lower() == wanted
                and mail.get("kind") == kind and isinstance(mail.get("token"), str)
                and isinstance(mail.get("tokenId"), str)):
            return mail["token"], mail["tokenId"]
    raise CliError(f"no {kind} email to {email} in {path}", ExitCode.USAGE)


def _tokens(args: SimpleNamespace, kind: str) -> tuple[str, str]:
    if args.from_outbox is not None:
        return outbox_token(args.from_outbox, args.email, kind)
    return args.token, args.token_id


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


def prepare(args: SimpleNamespace) -> Any:
    """Everything a command needs from the caller, before any file or network I/O:
    the credentials of ``login`` (prompting if needed), the arguments of ``call``."""
    if args.command in ("login", "link"):
        return _credentials(args)
    if args.command == "call":
        return _call_arguments(args.args)
    if args.command == "register":
        return _new_password(args)
    if args.command == "confirm":
        return _tokens(args, "confirm")
    if args.command == "reset-password confirm":
        return (*_tokens(args, "reset"), _new_password(args))
    return None


# -- the App of one run ---------------------------------------------------------------------------


class ServerScopedStorage:
    """One session file for every server: each server URL's users under their own key prefix.

    An App keys its records by app id only; the same app id on two servers (a :9090 and a
    :9091 local server) would otherwise share users whose tokens mean nothing to the other.
    """

    def __init__(self, inner: Any, base_url: str) -> None:
        self._inner = inner
        self._scope = f"cli:{base_url.strip().rstrip('/')}|"
        #: How many records of an earlier, unscoped session file :meth:`items` moved into this scope.
        self.adopted = 0

    async def get(self, key: str) -> str | None:
        value: str | None = await self._inner.get(self._scope + key)
        return value

    async def set(self, key: str, value: str) -> None:
        await self._inner.set(self._scope + key, value)

    async def remove(self, key: str) -> None:
        await self._inner.remove(self._scope + key)

    async def update(self, changes: Mapping[str, str | None]) -> None:
        await self._inner.update({self._scope + key: value for key, value in changes.items()})

    async def items(self, prefix: str) -> Mapping[str, str]:
        found: Mapping[str, str] = await self._inner.items(self._scope + prefix)
        if not found and not prefix.startswith("cli:"):
            found = await self._adopt_unscoped(prefix)
        return {key[len(self._scope):]: value for key, value in found.items()}

    async def _adopt_unscoped(self, prefix: str) -> Mapping[str, str]:
        # The CLI of appusers before sessions were keyed by server wrote the App's keys unscoped
        # (``appusers:<app id>:...``), which no server URL can claim: the first server this app id
        # is used with adopts them, in one atomic update (moved, never copied, never lost). Their
        # tokens are the server's to judge: a wrong server rejects them at the first refresh.
        legacy: Mapping[str, str] = await self._inner.items(prefix)
        if not legacy:
            return legacy
        moved: dict[str, str | None] = {self._scope + key: value for key, value in legacy.items()}
        moved.update(dict.fromkeys(legacy))
        await self._inner.update(moved)
        self.adopted += len(legacy)
        return {self._scope + key: value for key, value in legacy.items()}

    def drain_issues(self) -> list[Any]:
        issues: list[Any] = self._inner.drain_issues()
        return issues




@asynccontextmanager
async def open_app(settings: Settings, *, stderr: TextIO) -> AsyncIterator[App]:
    """An App on the session file, with its background saves finished before it closes."""
    from appusers.adapters import AiohttpTransport, FileStorage

    transport = None
    if settings.allow_insecure_http:
        transport = AiohttpTransport(timeout=settings.timeout, allow_insecure_http=True)
    storage = ServerScopedStorage(FileStorage(settings.session_path), settings.base_url)
    app = App(
        settings.app_id,
        base_url=settings.base_url,
        storage=storage,
        timeout=settings.timeout,
        transport=transport,
    )
    try:
        await app.open()
        for issue in app.storage_issues:
            stderr.write(f"warning: session file repaired: {issue.kind} ({issue.detail})\n")
        if storage.adopted:
            stderr.write(
                f"note: the session file's users of app {settings.app_id} from an earlier appusers "
                f"(not tied to a server) now belong to {settings.base_url}\n"
            )
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


def _known_user(app: App, wanted: str) -> User:
    """The user ``wanted`` names: a user id, a unique prefix of one, or an email address."""
    users = app.all_users
    user = users.get(wanted)
    if user is not None:
        return user
    if "@" in wanted:
        email = wanted.strip().lower()
        matches = [u for u in users.values() if str(u.profile.email or "").lower() == email]
        what = f"email {wanted!r}"
    else:
        matches = [u for u in users.values() if wanted and u.id.startswith(wanted.lower())]
        what = f"user id {wanted!r}"
    if len(matches) > 1:
        logged_in = [u for u in matches if u.is_logged_in]
        if "@" in wanted and len(logged_in) == 1:
            return logged_in[0]  # the same account logged in once and logged out before
        ids = ", ".join(u.id for u in matches)
        raise CliError(f"ambiguous {what}: it matches {ids}; give more of the id", ExitCode.USAGE)
    if not matches:
        raise CliError(f"unknown {what} (see 'appusers users')", ExitCode.USAGE)
    return matches[0]


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


async def _login(app: App, args: SimpleNamespace, credentials: Credentials) -> Outcome:
    user = await app.log_in(credentials)
    summary = user_summary(user, current=app.current_user)
    who = f" ({summary['email']})" if summary["email"] else " (anonymous)" if summary["anonymous"] else ""
    return Outcome({"user": summary}, f"logged in as {user.id}{who}")


async def _whoami(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    summary = user_summary(_acting_user(app, args.user), current=app.current_user)
    return Outcome({"user": summary}, user_text(summary))


async def _users(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    current = app.current_user
    summaries = [user_summary(u, current=current) for u in app.all_users.values()]
    text = "\n".join(user_line(s) for s in summaries) if summaries else "no users on this device"
    return Outcome({"current": None if current is None else current.id, "users": summaries}, text)


async def _switch(app: App, args: SimpleNamespace, _: Any) -> Outcome:
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


async def _logout(app: App, args: SimpleNamespace, _: Any) -> Outcome:
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


async def _remove(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    user = _known_user(app, args.user_id)
    return await _end(app, user, lambda: app.remove_user(user), "removed")


async def _call(app: App, args: SimpleNamespace, arguments: list[Any]) -> Outcome:
    user = _acting_user(app, args.user)
    result = await user.call_function(args.function, *arguments)
    return Outcome(
        {"function": args.function, "result": ejson_value(result, canonical=args.canonical)},
        ejson_text(result, canonical=args.canonical),
    )


async def _custom_data(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    user = _acting_user(app, args.user)
    data = await user.refresh_custom_data() if args.refresh else user.custom_data
    return Outcome(
        {"user_id": user.id, "custom_data": ejson_value(dict(data), canonical=args.canonical)},
        ejson_text(dict(data), canonical=args.canonical),
    )


async def _api_keys(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    user = _acting_user(app, args.user)
    keys = user.api_keys
    action = args.command.split()[1]
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


async def _register(app: App, args: SimpleNamespace, password: str) -> Outcome:
    await app.email_password_auth.register_user(args.email, password)
    return Outcome({"email": args.email, "registered": True},
                   f"registered {args.email}: confirm it with the token of the confirmation email "
                   "('appusers confirm TOKEN TOKEN_ID'), then log in")


async def _confirm(app: App, args: SimpleNamespace, tokens: tuple[str, str]) -> Outcome:
    await app.email_password_auth.confirm_user(*tokens)
    who = f" {args.email}" if args.email else ""
    return Outcome({"email": args.email, "confirmed": True}, f"confirmed{who}: you can log in now")


async def _resend(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    await app.email_password_auth.resend_confirmation_email(args.email)
    return Outcome({"email": args.email, "sent": True}, f"confirmation email sent again to {args.email}")


async def _reset_send(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    await app.email_password_auth.send_reset_password_email(args.email)
    return Outcome({"email": args.email, "sent": True},
                   f"password reset email sent to {args.email} (if it is registered)")


async def _reset_confirm(app: App, args: SimpleNamespace, prepared: tuple[str, str, str]) -> Outcome:
    token, token_id, password = prepared
    await app.email_password_auth.reset_password(token, token_id, password)
    who = f" of {args.email}" if args.email else ""
    return Outcome({"email": args.email, "reset": True}, f"password{who} changed: log in with the new one")


async def _link(app: App, args: SimpleNamespace, credentials: Credentials) -> Outcome:
    user = _acting_user(app, args.user)
    await user.link_credentials(credentials)
    summary = user_summary(user, current=app.current_user)
    return Outcome({"user": summary}, f"linked {credentials.provider} to {user.id}\n{user_text(summary)}")


async def _profile(app: App, args: SimpleNamespace, _: Any) -> Outcome:
    user = _acting_user(app, args.user)
    profile = await user.refresh_profile()
    identities = [{"id": i.id, "provider_type": i.provider_type} for i in user.identities]
    data = {"user_id": user.id, "profile": ejson_value(dict(profile.data)), "identities": identities}
    lines = [f"{'user:':<11} {user.id}"]
    lines += [f"{key + ':':<11} {value}" for key, value in sorted(data["profile"].items())]
    lines += [f"{'identity:':<11} {i['provider_type']} {i['id']}" for i in identities]
    return Outcome(data, "\n".join(lines))


_Command = Callable[[App, SimpleNamespace, Any], Awaitable[Outcome]]

COMMANDS: Mapping[str, _Command] = {
    "login": _login,
    "register": _register,
    "confirm": _confirm,
    "resend-confirmation": _resend,
    "reset-password send": _reset_send,
    "reset-password confirm": _reset_confirm,
    "link": _link,
    "profile": _profile,
    "whoami": _whoami,
    "users": _users,
    "switch": _switch,
    "logout": _logout,
    "remove": _remove,
    "call": _call,
    "custom-data": _custom_data,
    **{f"api-keys {action}": _api_keys for action in ("create", "list", "enable", "disable", "delete")},
}


async def run_session_command(
    args: SimpleNamespace, settings: Settings, prepared: Any, *, stderr: TextIO
) -> Outcome:
    """Run the session command ``args.command`` on the session in ``settings.data_dir``."""
    command = COMMANDS[args.command]
    async with open_app(settings, stderr=stderr) as app:
        return await command(app, args, prepared)
