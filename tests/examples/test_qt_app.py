"""examples/qt_app.py in a real X window (Xvfb): log in, switch, screenshot, ride out a server
outage (the test stops the LocalServer and starts it again), log out.

The example runs as a subprocess on the xcb platform (this test process is offscreen);
the server runs here, on a thread of its own. The screenshot is grabbed from the X
server by the example and kept as docs/_static/qt_app.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appusers import App
from appusers.server import LocalServer
from appusers.testing import ServerThread

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "qt_app.py"
DOC_SCREENSHOT = ROOT / "docs" / "_static" / "qt_app.png"
EMAIL, PASSWORD = "ana@example.com", "s3cret-pass"


@pytest.fixture
def xvfb_display() -> Iterator[str]:
    """A fresh Xvfb server; its display name (e.g. ``:3``)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb is missing in CI: .ci/install-gui.sh should have installed it")
        pytest.skip("Xvfb is not installed (run .ci/install-gui.sh as root)")
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


@pytest.fixture
def server_with_user(appusers_server_thread: ServerThread) -> tuple[LocalServer, Callable[[Any], Any]]:
    """The suite's server on its own thread (appusers.testing's ``ServerThread``), with a confirmed
    email/password account; and ``run(coro)``, which runs a coroutine on the server's loop (to
    stop and start it)."""
    server = appusers_server_thread.server
    run = appusers_server_thread.loop_thread.run

    async def register() -> None:
        async with App(server.app_id, base_url=server.url) as app:
            await app.email_password_auth.register_user(EMAIL, PASSWORD)
            mail = [m for m in server.read_outbox() if m["email"] == EMAIL and m["kind"] == "confirm"][-1]
            await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])

    run(register())
    return server, run


def test_example_logs_in_and_out_in_a_real_window(
    xvfb_display: str, server_with_user: tuple[LocalServer, Callable[[Any], Any]], tmp_path: Path
) -> None:
    shot = tmp_path / "qt_app.png"
    outage = tmp_path / "outage"
    outage.mkdir()
    env = {**os.environ, "DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb"}
    server, run = server_with_user
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--base-url", server.url, "--app-id", server.app_id,
         "--autopilot", EMAIL, PASSWORD, "--screenshot", str(shot), "--outage", str(outage),
         "--retry-max-delay", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as proc:
        timer = threading.Timer(120, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("autopilot: stop the server"):
                    run(server.stop())  # the example's next request finds nobody listening
                    (outage / "stopped").touch()
                elif line.startswith("autopilot: start the server"):
                    run(server.start())  # same URL, same data: the example must notice by itself
            code = proc.wait(10)
        finally:
            timer.cancel()
    output = "".join(lines)
    assert code == 0, output
    assert "[platform xcb]" in output, output  # a real X window, not offscreen
    for step in ("log in with the form", "log in anonymously", "switch back", "server down",
                 "refresh while offline", "server back", "log out anonymous"):
        assert f"step: {step}" in output, output
    assert "connection: server: offline — retrying in" in output, output
    assert "autopilot: done" in output
    assert PASSWORD not in output

    from PySide6.QtGui import QImage

    for picture in (shot, shot.with_name("qt_app_offline.png")):
        image = QImage(str(picture))
        assert not image.isNull() and image.width() >= 300 and image.height() >= 300
        # Not a blank grab: a real UI has many colours.
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
        assert len(colours) > 8
    if os.environ.get("APPUSERS_UPDATE_SCREENSHOTS") == "1":
        # Refreshing the docs' pictures is a deliberate act, not a side effect of every run.
        DOC_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_SCREENSHOT)
        shutil.copyfile(shot.with_name("qt_app_offline.png"), DOC_SCREENSHOT.with_name("qt_app_offline.png"))
