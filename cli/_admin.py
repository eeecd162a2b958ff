"""``appusers admin``: manage a server's users through its Admin API v3 over HTTP.

Each run logs in with the key pair of ``--key-file`` (``POST
/auth/providers/mongodb-cloud/login``), does its work under
``/groups/{groupId}/apps/{appId}`` and ends the admin session again, so no admin token
outlives the command. ``--group-id`` is required (``appusers serve`` prints it); without
``--app-id`` the group's first app is used, as the npm admin client does. Tokens and the
private key are never printed, logged or put in an error message.

Exit codes are the ``appusers`` command's (see ``--help``); an unknown user, pending
user, group or app is a usage error (2).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, TextIO, TypeVar
from urllib.parse import quote

import aiohttp
import click

from appusers._admin_key import AdminKeyError, new_admin_key_pair, read_admin_key_file, write_admin_key_file
from appusers.errors import RequestTimeoutError, ServiceError, TransportError, service_error_from_body

from ._click import CONTEXT
from ._click import Command as _Command
from ._click import Group as _Group
from ._errors import EXIT_CODES_HELP, CliError, ExitCode, exit_code_for
from ._output import Outcome, emit
from ._session import DEFAULT_LOCAL_URL

__all__ = ["admin_cli", "admin_main", "run_admin"]

_F = TypeVar("_F", bound=Callable[..., Any])

_log = logging.getLogger("appusers.cli.admin")

ADMIN_PREFIX = "/api/admin/v3.0"
#: Server answers that mean the caller named something that is not there (exit 2).
_NOT_FOUND_CODES = frozenset(
    {
        "UserNotFound",
        "GroupNotFound",
        "AppNotFound",
        "AccountNameInUse",
        "InvalidParameter",
        "MissingParameter",
    }
)
#: ``users list --all`` stops here: a runaway loop must not page forever.
_MAX_PAGES = 10_000

_EPILOG = f"""\
The key file is JSON: {{"public_key": "...", "private_key": "..."}} (mode 0600);
'appusers admin create-key FILE' writes a new one and 'appusers serve
--admin-key-file FILE' makes the server accept it. Options come from the command
line, else $APPUSERS_ADMIN_URL (else $APPUSERS_BASE_URL), $APPUSERS_ADMIN_KEY_FILE,
$APPUSERS_GROUP_ID and $APPUSERS_ADMIN_APP_ID.

examples:
  appusers admin create-key admin-key.json
  appusers serve --admin-key-file admin-key.json        # prints the group id
  export APPUSERS_ADMIN_KEY_FILE=admin-key.json APPUSERS_GROUP_ID=<group id>
  appusers admin users list --all
  appusers admin users disable 65a1f2d0e4b0a1b2c3d4e5f6
  appusers admin --json pending list

{EXIT_CODES_HELP}"""


# -- the command line (click) ---------------------------------------------------------------------


def _admin_options(function: _F) -> _F:
    """Options accepted before or after the action (on an action they default to None, so a
    value given earlier is kept)."""
    options = [
        click.option("--base-url", metavar="URL", default=None,
                     help="server URL (env APPUSERS_ADMIN_URL, APPUSERS_BASE_URL; "
                          f"default {DEFAULT_LOCAL_URL})"),
        click.option("--key-file", metavar="FILE", default=None, type=click.Path(),
                     help="admin key pair file (env APPUSERS_ADMIN_KEY_FILE)"),
        click.option("--group-id", metavar="ID", default=None,
                     help="the group (project) id `appusers serve` prints (env APPUSERS_GROUP_ID)"),
        click.option("--app-id", metavar="ID", default=None,
                     help="the app's _id (env APPUSERS_ADMIN_APP_ID; default: the group's first app)"),
        click.option("--json", "json_", is_flag=True, default=None,
                     help="print one machine-readable JSON document on stdout"),
        click.option("--debug", is_flag=True, default=None,
                     help="log requests (never tokens) and show tracebacks"),
        click.option("--timeout", metavar="SECONDS", default=None,
                     type=click.FloatRange(0, 1e9, min_open=True, max_open=True),
                     help="per-request timeout (default 30)"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _args(ctx: click.Context, /, group: str, action: str | None, given: dict[str, Any]) -> SimpleNamespace:
    """The parsed command: the action's options over the ``admin`` group's (``ctx.obj``)."""
    top: dict[str, Any] = ctx.obj or {}
    given = dict(given)
    given["json"] = given.pop("json_", None)
    merged: dict[str, Any] = {"admin": True, "group": group, "action": action}
    for name in ("json", "debug"):
        merged[name] = bool(given.pop(name) or top.get(name))
    for name in ("base_url", "key_file", "group_id", "app_id", "timeout"):
        value = given.pop(name)
        merged[name] = value if value is not None else top.get(name)
    if merged["timeout"] is None:
        merged["timeout"] = 30.0
    merged.update(given)
    return SimpleNamespace(**merged)


@click.group("admin", cls=_Group, context_settings=CONTEXT, invoke_without_command=True,
             help="Manage a server's users through its Admin API.", epilog=_EPILOG,
             short_help="manage the server's users through its Admin API")
@_admin_options
@click.pass_context
def admin_cli(ctx: click.Context, /, **options: Any) -> None:
    inherited: dict[str, Any] = ctx.obj or {}  # `appusers --json admin ...`: the outer --json/--debug
    options = {("json" if k == "json_" else k): v for k, v in options.items()}
    for name in ("json", "debug"):
        options[name] = options[name] or inherited.get(name)
    ctx.obj = options
    if ctx.invoked_subcommand is None:
        raise click.UsageError("a command is required (see 'appusers admin --help')", ctx)


def _leaf(group: click.Group, name: str, help_text: str, *params: Callable[[Any], Any],
          group_name: str | None = None) -> None:
    @click.pass_context
    def parsed(ctx: click.Context, /, **options: Any) -> SimpleNamespace:
        return _args(ctx, group_name or name, name if group_name else None, options)

    function: Any = parsed
    for param in reversed((*params, _admin_options)):
        function = param(function)
    group.command(name, cls=_Command, help=help_text, short_help=help_text, epilog=EXIT_CODES_HELP,
                  context_settings=CONTEXT)(function)


@admin_cli.group("users", cls=_Group, context_settings=CONTEXT,
                 short_help="list, show, disable, enable, delete users or end their sessions")
def _users() -> None:
    """List, show, disable, enable, delete users or end their sessions."""


_after = click.option("--after", metavar="ID", default=None, help="start after this id (paging)")
_all = click.option("--all", "all", is_flag=True, help="follow the pages to the end")
_leaf(_users, "list", "list users, oldest first (50 per page)", _after, _all,
      click.option("--desc", is_flag=True, help="newest first"), group_name="users")
for _name, _help in (
    ("get", "show one user"),
    ("disable", "disable a user: its log-ins fail and its sessions end now"),
    ("enable", "enable a disabled user"),
    ("delete", "delete a user and its sessions (its documents stay)"),
    ("logout", "end every session of a user"),
):
    _leaf(_users, _name, _help, click.argument("user_id", metavar="USER_ID"), group_name="users")


@admin_cli.group("pending", cls=_Group, context_settings=CONTEXT,
                 short_help="unconfirmed email/password users")
def _pending() -> None:
    """Unconfirmed email/password users."""


_leaf(_pending, "list", "list pending users (50 per page)", _after, _all, group_name="pending")
_leaf(_pending, "confirm", "confirm a pending user", click.argument("email", metavar="EMAIL"),
      group_name="pending")
_leaf(_pending, "delete", "delete a pending user", click.argument("email", metavar="EMAIL"),
      group_name="pending")
_leaf(admin_cli, "purge-anonymous", "delete anonymous users inactive for N days (server default: 90)",
      click.option("--inactive-days", metavar="N", default=None,
                   type=click.FloatRange(0, 1e9, min_open=True, max_open=True)))
_leaf(admin_cli, "create-key", "write a new admin key pair to FILE (0600; no server needed)",
      click.argument("file", metavar="FILE", type=click.Path()))


# --------------------------------------------------------------------------- HTTP


class AdminClient:
    """A logged-in Admin API session (use as ``async with``)."""

    def __init__(self, base_url: str, key_file: str, timeout: float) -> None:
        self._base = base_url.rstrip("/") + ADMIN_PREFIX
        self._key_file = key_file
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None
        self._access: str | None = None
        self._refresh: str | None = None

    def __repr__(self) -> str:
        return f"AdminClient({self._base!r})"

    async def __aenter__(self) -> AdminClient:
        try:
            pair = read_admin_key_file(self._key_file)
        except AdminKeyError as exc:
            raise CliError(str(exc), ExitCode.USAGE) from None
        self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            data = await self.request(
                "POST",
                "/auth/providers/mongodb-cloud/login",
                body={"username": pair.public_key, "apiKey": pair.private_key},
                auth=False,
            )
            access, refresh = data.get("access_token"), data.get("refresh_token")
            if not isinstance(access, str) or not isinstance(refresh, str):
                raise CliError("the server's admin login answer has no tokens", ExitCode.SERVER)
            self._access, self._refresh = access, refresh
        except BaseException:
            await self._http.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        http, self._http = self._http, None
        if http is None:
            return
        try:
            if self._refresh is not None:
                await self._send(http, "DELETE", "/auth/session", None, self._refresh)
        except (aiohttp.ClientError, TimeoutError) as err:
            _log.debug("could not end the admin session: %s", type(err).__name__)
        finally:
            self._access = self._refresh = None
            await http.close()

    async def _send(
        self, http: aiohttp.ClientSession, method: str, path: str, body: Any, bearer: str | None
    ) -> tuple[int, str, bytes]:
        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        _log.debug("%s %s", method, path)
        async with http.request(method, self._base + path, data=data, headers=headers) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

    async def request(self, method: str, path: str, *, body: Any = None, auth: bool = True) -> Any:
        """Send one request; the parsed JSON answer (None for an empty one) or a typed error."""
        assert self._http is not None
        try:
            status, content_type, raw = await self._send(
                self._http, method, path, body, self._access if auth else None
            )
        except TimeoutError:
            raise RequestTimeoutError(
                f"{method} {path}: no answer in time", method=method, url=path
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", method=method, url=path) from None
        data: Any = None
        if raw and content_type.split(";")[0].strip() == "application/json":
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
        if status >= 400:
            error = service_error_from_body(data, status=status, method=method, url=path)
            if error is None:
                error = ServiceError(
                    f"{method} {path} failed: HTTP {status}", status=status, method=method, url=path
                )
            raise error
        return data


def _q(value: str) -> str:
    return quote(value, safe="")


# --------------------------------------------------------------------------- commands


def _user_row(user: Mapping[str, Any]) -> str:
    identities = user.get("identities") or []
    providers = ",".join(sorted({str(i.get("provider_type")) for i in identities if isinstance(i, Mapping)}))
    data = user.get("data")
    data = data if isinstance(data, Mapping) else {}
    who = data.get("email") or data.get("name") or ""
    flag = "disabled" if user.get("disabled") else "enabled"
    return f"{user.get('_id')}  {user.get('type', ''):<6}  {flag:<8}  {providers or '-':<22}  {who}".rstrip()


def _user_text(user: Mapping[str, Any]) -> str:
    return json.dumps(user, indent=2, sort_keys=True, ensure_ascii=False)


async def _pages(
    client: AdminClient, path: str, after: str | None, follow: bool, extra: str = ""
) -> list[Any]:
    items: list[Any] = []
    for _ in range(_MAX_PAGES):
        query = ([f"after={_q(after)}"] if after else []) + ([extra] if extra else [])
        page = await client.request("GET", path + ("?" + "&".join(query) if query else ""))
        if not isinstance(page, list):
            raise CliError("the server's answer is not a list", ExitCode.SERVER)
        items.extend(page)
        if not follow or len(page) < 50:
            break
        last = page[-1].get("_id") if isinstance(page[-1], Mapping) else None
        if not isinstance(last, str) or last == after:
            break
        after = last
    return items


async def _app_path(client: AdminClient, group_id: str, app_id: str | None) -> str:
    if app_id is None:
        apps = await client.request("GET", f"/groups/{_q(group_id)}/apps?product=atlas")
        if not isinstance(apps, list) or not apps or not isinstance(apps[0], Mapping):
            raise CliError(f"group {group_id} has no app", ExitCode.USAGE)
        app_id = str(apps[0].get("_id"))
    return f"/groups/{_q(group_id)}/apps/{_q(app_id)}"


async def _run(args: SimpleNamespace, settings: Mapping[str, Any]) -> Outcome:
    async with AdminClient(settings["base_url"], settings["key_file"], args.timeout) as client:
        app = await _app_path(client, settings["group_id"], settings["app_id"])
        if args.group == "purge-anonymous":
            body = {} if args.inactive_days is None else {"inactive_days": args.inactive_days}
            result = await client.request("POST", f"{app}/x-appusers/purge_anonymous", body=body)
            count = result.get("purged") if isinstance(result, Mapping) else None
            return Outcome(
                {"purged": count, "user_ids": result.get("user_ids", [])}, f"purged {count} anonymous users"
            )
        if args.group == "users":
            if args.action == "list":
                users = await _pages(
                    client, f"{app}/users", args.after, args.all, "desc=true" if args.desc else ""
                )
                return Outcome({"users": users}, "\n".join(_user_row(u) for u in users) or "(no users)")
            path = f"{app}/users/{_q(args.user_id)}"
            if args.action == "get":
                user = await client.request("GET", path)
                return Outcome({"user": user}, _user_text(user))
            if args.action == "delete":
                await client.request("DELETE", path)
            else:
                await client.request("PUT", f"{path}/{args.action}")
            done = {"disable": "disabled", "enable": "enabled", "delete": "deleted", "logout": "logged out"}
            return Outcome(
                {"user_id": args.user_id, "action": args.action}, f"{done[args.action]} user {args.user_id}"
            )
        # pending
        if args.action == "list":
            pending = await _pages(client, f"{app}/user_registrations/pending_users", args.after, args.all)
            rows = [
                f"{p.get('_id')}  {(p.get('login_ids') or [{}])[0].get('id', '')}"
                for p in pending
                if isinstance(p, Mapping)
            ]
            return Outcome({"pending_users": pending}, "\n".join(rows) or "(no pending users)")
        path = f"{app}/user_registrations/by_email/{_q(args.email)}"
        if args.action == "confirm":
            await client.request("POST", f"{path}/confirm")
        else:
            await client.request("DELETE", path)
        return Outcome(
            {"email": args.email, "action": args.action},
            f"{'confirmed' if args.action == 'confirm' else 'deleted'} pending user {args.email}",
        )


def _settings(args: SimpleNamespace, env: Mapping[str, str]) -> dict[str, Any]:
    base_url = (
        args.base_url or env.get("APPUSERS_ADMIN_URL") or env.get("APPUSERS_BASE_URL") or DEFAULT_LOCAL_URL
    )
    if not base_url.startswith(("http://", "https://")):
        raise CliError(f"--base-url must be an http:// or https:// URL, not {base_url!r}", ExitCode.USAGE)
    key_file = args.key_file or env.get("APPUSERS_ADMIN_KEY_FILE")
    if not key_file:
        raise CliError(
            "an admin key file is required: --key-file FILE or $APPUSERS_ADMIN_KEY_FILE", ExitCode.USAGE
        )
    group_id = args.group_id or env.get("APPUSERS_GROUP_ID")
    if not group_id:
        raise CliError(
            "a group id is required: --group-id ID or $APPUSERS_GROUP_ID (`appusers serve` prints it)",
            ExitCode.USAGE,
        )
    return {
        "base_url": base_url,
        "key_file": key_file,
        "group_id": group_id,
        "app_id": args.app_id or env.get("APPUSERS_ADMIN_APP_ID") or None,
    }


def _exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, click.ClickException):
        return ExitCode.USAGE
    if isinstance(exc, click.Abort):
        return ExitCode.INTERRUPTED
    if isinstance(exc, ServiceError) and exc.error_code in _NOT_FOUND_CODES:
        return ExitCode.USAGE
    return exit_code_for(exc)


def _message(exc: BaseException, base_url: str) -> str:
    if isinstance(exc, CliError):
        return exc.message
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, KeyboardInterrupt | click.Abort):
        return "interrupted"
    if isinstance(exc, TransportError):
        return f"cannot reach the server at {base_url}: {exc}"
    if isinstance(exc, ServiceError):
        if exc.status == 404 and exc.error_code in ("", "NotFound"):
            return f"the server has no Admin API at {base_url} (HTTP 404: no admin key configured?)"
        if exc.status == 401 and exc.url.endswith("/login"):
            return f"admin login refused: {exc}"
        code = f" {exc.error_code}" if exc.error_code else ""
        return f"the server answered{code} (HTTP {exc.status}): {exc}"
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)"


def admin_main(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``appusers admin ARGV``; the exit code."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    argv = list(argv)
    try:
        parsed = admin_cli.main(argv, prog_name="appusers admin", standalone_mode=False)
    except (Exception, KeyboardInterrupt, click.Abort) as exc:
        reporting = SimpleNamespace(json="--json" in argv, debug="--debug" in argv)
        return _report(exc, reporting, DEFAULT_LOCAL_URL, out, err)
    if not isinstance(parsed, SimpleNamespace):  # --help printed
        return parsed if isinstance(parsed, int) else 0
    return run_admin(parsed, env=env, stdout=out, stderr=err)


def run_admin(
    args: SimpleNamespace,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Carry out a parsed ``appusers admin`` command; the exit code."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    environ = os.environ if env is None else env
    base_url = DEFAULT_LOCAL_URL
    try:
        if args.debug:
            logging.basicConfig(level=logging.DEBUG, stream=err, format="%(levelname)s %(name)s: %(message)s")
        if args.group == "create-key":
            pair = new_admin_key_pair()
            try:
                write_admin_key_file(args.file, pair)
            except AdminKeyError as exc:
                raise CliError(str(exc), ExitCode.USAGE) from None
            outcome = Outcome(
                {"key_file": args.file, "public_key": pair.public_key},
                f"wrote a new admin key pair to {args.file} (public key {pair.public_key})",
            )
        else:
            settings = _settings(args, environ)
            base_url = settings["base_url"]
            outcome = asyncio.run(_run(args, settings))
    except (Exception, KeyboardInterrupt) as exc:
        return _report(exc, args, base_url, out, err)
    emit(outcome, json_mode=args.json, stdout=out, stderr=err)
    return 0


def _report(exc: BaseException, args: SimpleNamespace, base_url: str, out: TextIO, err: TextIO) -> int:
    code = _exit_code(exc)
    message = _message(exc, base_url)
    if args.debug and not isinstance(exc, KeyboardInterrupt | click.ClickException | click.Abort):
        traceback.print_exception(exc, file=err)
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        err.write(exc.ctx.get_usage() + "\n")
    err.write(f"appusers admin: error: {message}\n")
    if args.json:
        error = {
            "exit_code": int(code),
            "kind": code.name.lower(),
            "type": type(exc).__name__,
            "code": exc.error_code if isinstance(exc, ServiceError) and exc.error_code else None,
            "message": message,
        }
        out.write(json.dumps({"error": error}, sort_keys=True) + "\n")
    return int(code)
