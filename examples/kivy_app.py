"""A Kivy app over appusers: log-in form, current user, users list with switch, log-out.

Kivy runs on asyncio (``App.async_run``), so the appusers App, its HTTP calls and
every Kivy callback share one loop and one thread; the ``AppModel`` properties
feed the widgets. Users are kept in the app's ``user_data_dir``.

    python examples/kivy_app.py                       # starts a local server with a demo account
    python examples/kivy_app.py --base-url http://127.0.0.1:9090 --app-id appusers-local

``--transport urlrequest`` sends HTTP through Kivy's ``UrlRequest`` (as a mobile
build would). ``--autopilot EMAIL PASSWORD`` drives the UI by itself: it logs in
through the form, adds an anonymous user, switches back, saves a screenshot
(``--screenshot PATH``), logs both out, prints each step and exits (status 0
when every step did what it should). With ``--outage DIR`` it also rides out a
server outage before logging out: it prints ``autopilot: stop the server``, waits for
the file ``DIR/stopped``, refreshes the profile (which fails) until the screen shows
"offline — retrying in N s", prints ``autopilot: start the server`` and waits until
the App is back online by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")  # argparse reads the command line, not Kivy

from kivy.app import App as KivyApp
from kivy.clock import Clock
from kivy.config import Config

Config.set("graphics", "width", "820")
Config.set("graphics", "height", "620")
Config.set("input", "mouse", "mouse,disable_multitouch")

from kivy.core.window import Window  # noqa: E402
from kivy.lang import Builder  # noqa: E402
from kivy.properties import NumericProperty  # noqa: E402
from kivy.uix.boxlayout import BoxLayout  # noqa: E402
from kivy.uix.button import Button  # noqa: E402
from kivy.uix.label import Label  # noqa: E402

from appusers import App, Credentials, RetryPolicy  # noqa: E402
from appusers.bindings.kivy import AppModel, UrlRequestTransport, storage_for, user_data_dir  # noqa: E402
from appusers.transport import Transport  # noqa: E402

DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "demo-pass"

KV = """
#:set pad dp(10)

<Heading@Label>:
    size_hint_y: None
    height: dp(28)
    bold: True
    halign: "left"
    text_size: self.size
    valign: "middle"

<Field@Label>:
    size_hint_y: None
    height: dp(24)
    halign: "left"
    text_size: self.size
    valign: "middle"
    color: 0.85, 0.85, 0.85, 1

<UsersScreen>:
    orientation: "vertical"
    padding: pad
    spacing: pad
    canvas.before:
        Color:
            rgba: 0.12, 0.13, 0.16, 1
        Rectangle:
            pos: self.pos
            size: self.size

    Heading:
        text: "Log in"
    BoxLayout:
        size_hint_y: None
        height: dp(40)
        spacing: pad
        TextInput:
            id: email
            hint_text: "email"
            multiline: False
            write_tab: False
        TextInput:
            id: password
            hint_text: "password"
            password: True
            multiline: False
            write_tab: False
        Button:
            id: log_in
            text: "Log in"
            size_hint_x: 0.5
            disabled: root.model.busy
            on_release: root.log_in()
        Button:
            id: anonymous
            text: "Anonymous"
            size_hint_x: 0.5
            disabled: root.model.busy
            on_release: root.log_in_anonymously()
    Label:
        id: error
        size_hint_y: None
        height: dp(22)
        color: 1, 0.45, 0.4, 1
        text: root.model.error
        text_size: self.size
        halign: "left"

    Heading:
        text: "Current user"
    Field:
        id: current
        text:
            root.describe(root.model.logged_in, root.model.current_user.user_id, \
            root.model.current_user.state)
    Field:
        text: root.profile_line(root.model.current_user.email, root.model.current_user.name)
    Field:
        text: "custom data: " + (str(dict(root.model.current_user.custom_data)) or "-")
    Field:
        id: connection
        text: "server: " + root.connection_line(root.model.connectivity, root.model.next_attempt, root.tick)
    BoxLayout:
        size_hint_y: None
        height: dp(40)
        spacing: pad
        Button:
            id: refresh
            text: "Refresh profile"
            size_hint_x: None
            width: dp(160)
            disabled: not root.model.logged_in
            on_release: root.model.refresh_profile()
        Button:
            id: log_out
            text: "Log out"
            size_hint_x: None
            width: dp(140)
            disabled: not root.model.logged_in or root.model.busy
            on_release: root.model.log_out()
        Widget:

    Heading:
        text: "Users on this device"
    BoxLayout:
        id: users
        orientation: "vertical"
        spacing: dp(4)
        size_hint_y: None
        height: self.minimum_height
    Widget:
"""


class UsersScreen(BoxLayout):  # type: ignore[misc]
    """The one screen: its widgets bind to ``model``; going away disposes it."""

    tick = NumericProperty(0)
    """Bumped twice a second so "retrying in N s" counts down between connectivity changes."""

    def __init__(self, model: AppModel, **kwargs: Any) -> None:
        self.model = model
        super().__init__(**kwargs)
        model.bind(users=self._show_users)
        self._show_users(model, model.users)
        self._ticker = Clock.schedule_interval(self._tick, 0.5)

    def _tick(self, _dt: float) -> None:
        self.tick += 1

    @staticmethod
    def connection_line(connectivity: str, next_attempt: float, _tick: int) -> str:
        # The App's aggregate (one server serves every user); the countdown is worked out here.
        if connectivity == "offline":
            if not next_attempt:
                return "offline"
            return f"offline — retrying in {max(1, round(next_attempt - time.time()))} s"
        return connectivity or "online"

    @staticmethod
    def describe(logged_in: bool, user_id: str, state: str) -> str:
        return f"id: {user_id}   state: {state}" if logged_in else "nobody is logged in"

    @staticmethod
    def profile_line(email: str, name: str) -> str:
        return f"email: {email or '-'}   name: {name or '-'}"

    def log_in(self) -> None:
        self.model.log_in(Credentials.email_password(self.ids.email.text.strip(), self.ids.password.text))

    def log_in_anonymously(self) -> None:
        self.model.log_in(Credentials.anonymous(reuse=False))

    def switch_buttons(self) -> dict[str, Button]:
        return {button.user_id: button for button in self.ids.users.children if isinstance(button, Button)}

    def _show_users(self, _model: Any, users: list[dict[str, Any]]) -> None:
        box = self.ids.users
        box.clear_widgets()
        if not users:
            box.add_widget(Label(text="(none)", size_hint_y=None, height="28dp"))
        for row in users:
            who = row["email"] or "anonymous"
            action = "current:" if row["current"] else "switch to:"
            button = Button(
                text=f"{action}  {who}   {row['user_id']}   {row['state']}",
                size_hint_y=None, height="34dp",
                disabled=row["current"] or row["state"] != "LoggedIn",
            )
            button.user_id = row["user_id"]
            button.bind(on_release=lambda b: self.model.switch_user(b.user_id))
            box.add_widget(button)

    def dispose(self) -> None:
        self._ticker.cancel()
        self.model.unbind(users=self._show_users)
        self.model.dispose()


class UsersApp(KivyApp):  # type: ignore[misc]
    title = "appusers on Kivy"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: AppModel | None = None
        self.screen: UsersScreen | None = None

    def build(self) -> UsersScreen:
        Builder.load_string(KV)
        assert self.model is not None
        self.screen = UsersScreen(self.model)
        return self.screen

    def on_stop(self) -> None:
        if self.screen is not None:
            self.screen.dispose()


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - a UI robot reads the screen, as a person would
            await asyncio.sleep(0.05)
    print(f"ok: {what}", flush=True)


async def _screenshot(path: Path) -> None:
    await asyncio.sleep(0.3)  # a few frames, so the last change is drawn
    taken = Window.screenshot(name=str(path))
    os.replace(taken, path)
    print(f"ok: screenshot saved to {path}", flush=True)


async def ride_out_an_outage(screen: UsersScreen, outage: Path, screenshot: Path | None = None) -> None:
    """Have the server stopped, fail a request, see "offline — retrying", have it started, see
    online. ``screenshot``: where to save the window while it shows the outage."""
    ids = screen.ids
    print("autopilot: stop the server", flush=True)
    await _until(lambda: (outage / "stopped").exists(), "the server is stopped", timeout=30)
    ids.refresh.trigger_action(0)
    await _until(lambda: ids.connection.text.startswith("server: offline — retrying in"),
                 "the screen shows the outage")
    print(f"connection: {ids.connection.text}", flush=True)
    if screenshot is not None:
        await _screenshot(screenshot)
    print("autopilot: start the server", flush=True)
    await _until(lambda: ids.connection.text == "server: online", "back online by itself", timeout=30)


async def autopilot(
    kivy_app: UsersApp, email: str, password: str, screenshot: Path | None, outage: Path | None = None
) -> None:
    """Drive the UI like a person: type, press, read the widgets back."""
    await _until(lambda: kivy_app.screen is not None and kivy_app.root_window is not None, "window shown")
    screen = kivy_app.screen
    assert screen is not None and kivy_app.model is not None
    model, ids = kivy_app.model, screen.ids
    ids.email.text, ids.password.text = email, password
    ids.log_in.trigger_action(0)
    await _until(lambda: model.logged_in and model.current_user.email == email, f"logged in as {email}")
    email_user_id = model.current_user_id
    ids.anonymous.trigger_action(0)
    await _until(lambda: len(model.users) == 2 and model.current_user_id != email_user_id,
                 "an anonymous user was added and became current")
    await _until(lambda: email_user_id in screen.switch_buttons(), "the users list shows a switch button")
    screen.switch_buttons()[email_user_id].trigger_action(0)
    await _until(lambda: model.current_user_id == email_user_id, "switched back to the email user")
    await _until(lambda: "state: LoggedIn" in ids.current.text, "the current-user pane shows it")
    if screenshot is not None:
        await _screenshot(screenshot)
    if outage is not None:
        offline = None if screenshot is None else screenshot.with_name(f"{screenshot.stem}_offline.png")
        await ride_out_an_outage(screen, outage, offline)
    ids.log_out.trigger_action(0)
    await _until(lambda: model.current_user_id not in ("", email_user_id),
                 "logged out: the other user is current")
    ids.log_out.trigger_action(0)
    await _until(lambda: not model.logged_in and "nobody" in ids.current.text,
                 "logged out: nobody is current")
    kivy_app.autopilot_ok = True


async def _run_ui(app: App, args: argparse.Namespace, kivy_app: UsersApp) -> int:
    kivy_app.model = AppModel(app)
    kivy_app.autopilot_ok = False
    pilot: asyncio.Task[None] | None = None
    if args.autopilot:

        async def drive() -> None:
            try:
                await autopilot(kivy_app, args.autopilot[0], args.autopilot[1], args.screenshot, args.outage)
            except Exception as exc:
                print(f"autopilot failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            finally:
                kivy_app.stop()

        pilot = asyncio.ensure_future(drive())
    await kivy_app.async_run(async_lib="asyncio")
    if pilot is not None:
        pilot.cancel()
        await asyncio.gather(pilot, return_exceptions=True)
        return 0 if kivy_app.autopilot_ok else 1
    return 0


async def main_async(args: argparse.Namespace) -> int:
    kivy_app = UsersApp()
    transport: Transport | None = UrlRequestTransport() if args.transport == "urlrequest" else None
    retry = RetryPolicy(initial_delay=min(0.5, args.retry_max_delay), max_delay=args.retry_max_delay)
    if args.base_url is not None:
        storage = storage_for(kivy_app, name=args.storage_name)
        async with App(args.app_id, base_url=args.base_url, storage=storage, transport=transport,
                       retry=retry) as app:
            return await _run_ui(app, args, kivy_app)

    from appusers.server import LocalServer, load_config

    # A fresh server signs with a fresh key: users kept from an earlier demo run are stale.
    demo_store = user_data_dir(kivy_app) / "appusers-local-demo.json"
    demo_store.unlink(missing_ok=True)
    storage = storage_for(kivy_app, name=demo_store.name)
    with tempfile.TemporaryDirectory(prefix="appusers-kivy-") as data_dir:
        async with LocalServer(config=load_config(None), data_dir=Path(data_dir)) as server:
            async with App(server.app_id, base_url=server.url, storage=storage, transport=transport,
                           retry=retry) as app:
                await app.email_password_auth.register_user(DEMO_EMAIL, DEMO_PASSWORD)
                mail = server.read_outbox()[-1]
                await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
                print(f"local server at {server.url}; demo account {DEMO_EMAIL} / {DEMO_PASSWORD}",
                      flush=True)
                return await _run_ui(app, args, kivy_app)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="appusers on Kivy")
    parser.add_argument("--base-url", help="a running server (default: start a local one)")
    parser.add_argument("--app-id", default="appusers-local")
    parser.add_argument("--transport", choices=("aiohttp", "urlrequest"), default="aiohttp")
    parser.add_argument("--storage-name", default="appusers-users.json",
                        help="file name in the app's user_data_dir")
    parser.add_argument("--autopilot", nargs=2, metavar=("EMAIL", "PASSWORD"))
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--outage", type=Path, metavar="DIR",
                        help="autopilot: ride out a server outage (see the module docstring)")
    parser.add_argument("--retry-max-delay", type=float, default=8.0,
                        help="longest wait between two attempts while offline (seconds)")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
