"""``appusers demo``: a user's life against an embedded local server, each Rx event printed live."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

from appusers._app import App
from appusers._credentials import Credentials
from appusers._events import AppEvent, UserEvent
from appusers._models import UserState
from appusers._user import User

__all__ = ["run_demo"]


class _Narrator:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.events = 0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def step(self, text: str) -> None:
        self.say(f"\n== {text}")

    def event(self, source: str, value: Any) -> None:
        self.events += 1
        self.say(f"   [{time.monotonic() - self.started:6.3f}s] {source:<22} {_describe(value)}")

    def watch_user(self, user: User, label: str) -> None:
        user.state_changes.subscribe(lambda s: self.event(f"{label}.state_changes", s))
        user.events.subscribe(lambda e: self.event(f"{label}.events", e))


def _describe(value: Any) -> str:
    if isinstance(value, UserState):
        return value.value
    if isinstance(value, UserEvent | AppEvent):
        fields = {k: v for k, v in attrs.asdict(value, recurse=False).items() if k != "user_id"}
        shown = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
        return f"{type(value).__name__}({shown})"
    if isinstance(value, User):
        return f"current user -> {value.id}"
    if value is None:
        return "current user -> none"
    if isinstance(value, tuple):
        return f"users -> [{', '.join(u.id[-6:] for u in value)}]"
    return repr(value)


def _id(user: User | None) -> str:
    return "none" if user is None else user.id


def _short(value: Any) -> str:
    if hasattr(value, "value") and not isinstance(value, dict):
        return str(value.value)
    if isinstance(value, tuple):
        return f"<{len(value)} identities>"
    return repr(value)


async def _demo(quiet: bool) -> int:
    from appusers.server import LocalServer

    say = _Narrator(quiet)
    with tempfile.TemporaryDirectory(prefix="appusers-demo-") as data:
        async with LocalServer(data_dir=Path(data) / "server") as server:
            say.say(f"local App Services server at {server.url} (app id {server.app_id!r})")
            async with App(server.app_id, base_url=server.url) as app:
                app.current_user_changes.subscribe(lambda u: say.event("app.current_user", u))
                app.users_changes.subscribe(lambda us: say.event("app.users", us))
                auth = app.email_password_auth

                say.step("register ana@example.com and confirm her from the outbox")
                await auth.register_user("ana@example.com", "correct horse battery")
                mail = [m for m in server.read_outbox() if m["email"] == "ana@example.com"][-1]
                say.say(f"   outbox: a {mail['kind']} email for {mail['email']}")
                await auth.confirm_user(mail["token"], mail["tokenId"])

                say.step("log in with email/password")
                ana = await app.log_in(Credentials.email_password("ana@example.com", "correct horse battery"))
                say.watch_user(ana, "ana")
                say.say(f"   logged in as {ana.id}, profile email {ana.profile.email!r}")

                say.step("call a backend function: sum(2, 40)")
                say.say(f"   result: {await ana.functions.sum(2, 40)}")

                say.step("write custom data, then refresh it")
                await ana.functions.set_custom_data({"plan": "pro", "theme": "dark"})
                data_now = await ana.refresh_custom_data()
                say.say(f"   custom data: {dict(data_now)}")

                say.step("create an API key and log in with it")
                key = await ana.api_keys.create("demo-key")
                say.say(f"   created {key!r} (the secret is shown once and not printed here)")
                assert key.key is not None
                same = await app.log_in(Credentials.api_key(key.key))
                say.say(f"   API-key login returned the same user: {same is ana}")

                say.step("a second user (anonymous) and a switch")
                guest = await app.log_in(Credentials.anonymous())
                say.watch_user(guest, "guest")
                app.switch_user(ana)
                say.say(f"   all users: {len(app.all_users)}, current: {_id(app.current_user)}")

                say.step("log ana out (she stays known, logged out)")
                await ana.log_out()
                say.say(f"   ana is {ana.state.value}; current user is now {_id(app.current_user)}")

                say.step("remove ana from this device")
                await app.remove_user(ana)
                say.say(f"   ana is {ana.state.value}; all users: {list(app.all_users)}")

                say.step("log the guest out (anonymous users are removed)")
                await guest.log_out()
                say.say(f"   guest is {guest.state.value}; current user: {app.current_user}")
    elapsed = time.monotonic() - say.started
    print(f"\ndemo finished: {say.events} events observed in {elapsed:.2f}s", flush=True)
    return 0


def run_demo(*, quiet: bool = False) -> int:
    return asyncio.run(_demo(quiet))
