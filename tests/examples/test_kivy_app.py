"""examples/kivy_app.py in a real window (Xvfb): log in, add a user, switch, screenshot, ride out a
server outage (the test stops the LocalServer and starts it again), log out.

The example runs as a subprocess on Kivy's SDL2 window with Kivy's ``UrlRequest``
transport, against the local server of this test's loop (so the test awaits the
subprocess rather than blocking on it). Its users go to the Kivy app's
``user_data_dir`` under a fresh HOME (no ``~/.config`` yet, as on a new account).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appusers import App

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "kivy_app.py"
DOC_PICTURES = ROOT / "docs" / "_static"
EMAIL, PASSWORD = "kim@example.com", "s3cret-pass"


@pytest.fixture
def display() -> Iterator[str]:
    """A fresh Xvfb server; its display name."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Xvfb is missing in CI: .ci/install-gui.sh installs it")
        pytest.skip("Xvfb is not installed (run .ci/install-gui.sh as root)")
    try:
        import kivy  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"kivy cannot be imported ({exc}); install appusers[kivy]")
    read_end, write_end = os.pipe()
    # -displayfd: Xvfb picks a free display and writes its number once it accepts clients.
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_the_kivy_example_logs_in_and_out_in_a_real_window(
    display: str, server: Any, app: App, tmp_path: Path
) -> None:
    await app.email_password_auth.register_user(EMAIL, PASSWORD)
    mail = [m for m in server.read_outbox() if m["email"] == EMAIL][-1]
    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
    home = tmp_path / "home"
    home.mkdir()
    shot = tmp_path / "kivy_app.png"
    outage = tmp_path / "outage"
    outage.mkdir()
    env = {
        **os.environ,
        "DISPLAY": display,
        "KIVY_HOME": str(tmp_path / "kivy-home"),
        "HOME": str(home),
        "KIVY_NO_CONSOLELOG": "1",
    }
    env.pop("KIVY_WINDOW", None)
    env.pop("XDG_CONFIG_HOME", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--base-url", server.url, "--app-id", server.app_id,
        "--transport", "urlrequest", "--autopilot", EMAIL, PASSWORD, "--screenshot", str(shot),
        "--outage", str(outage), "--retry-max-delay", "1",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async def drive() -> tuple[str, bytes]:
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        errors = asyncio.ensure_future(proc.stderr.read())
        async for raw in proc.stdout:
            line = raw.decode()
            lines.append(line)
            if line.startswith("autopilot: stop the server"):
                await server.stop()  # the example's next request finds nobody listening
                (outage / "stopped").touch()
            elif line.startswith("autopilot: start the server"):
                await server.start()  # same URL, same data: the example must notice by itself
        await proc.wait()
        return "".join(lines), await errors

    try:
        stdout, err = await asyncio.wait_for(drive(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = err.decode()
    assert proc.returncode == 0, stdout + stderr
    for step in ("logged in as kim@example.com", "switched back to the email user", "the server is stopped",
                 "the screen shows the outage", "back online by itself", "logged out: nobody is current"):
        assert f"ok: {step}" in stdout, stdout + stderr
    assert "connection: server: offline — retrying in" in stdout
    offline = shot.with_name("kivy_app_offline.png")
    for picture in (shot, offline):
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert picture.stat().st_size > 10_000  # a drawn window, not a blank image
    if os.environ.get("APPUSERS_UPDATE_SCREENSHOTS") == "1":
        # Refreshing the docs' pictures is a deliberate act, not a side effect of every run.
        for picture in (shot, offline):
            shutil.copyfile(picture, DOC_PICTURES / picture.name)
    # The users were kept in the Kivy app's user_data_dir: the email user, now logged out.
    (store,) = (home / ".config").glob("*/appusers-users.json")
    from appusers.adapters._file import _parse

    items = _parse(store.read_bytes())
    assert any("LoggedOut" in value for value in items.values())
