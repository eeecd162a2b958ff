"""Fixtures shared by the Qt binding tests: a core loop and a local server on their own threads.

The Qt tests pump the GUI thread with ``qtbot.waitUntil`` (never ``processEvents()``
loops: PySide6 6.12 aborts after ~5,000 of them), so nothing they wait for may need
the main thread's asyncio loop: the server and the App each get a thread of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appusers import App
from appusers.bindings.qt import CoreLoop
from appusers.server import LocalServer, load_config

GUI_THREAD = threading.main_thread().ident


@pytest.fixture
def core() -> Iterator[CoreLoop]:
    loop = CoreLoop()
    yield loop
    loop.stop()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A LocalServer running on its own thread's asyncio loop."""
    server_loop = CoreLoop(name="test-server")
    server = LocalServer(config=load_config(None), data_dir=tmp_path / "server")
    server_loop.submit(server.__aenter__()).result(30)
    yield server
    server_loop.stop(server.__aexit__(None, None, None))


async def register_confirmed(app: App, server: Any, email: str, password: str) -> None:
    """Register ``email`` and confirm it with the token the server put in its outbox."""
    await app.email_password_auth.register_user(email, password)
    mail = [m for m in server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
