"""Helpers shared by the Qt binding tests: a core loop and a local server on their own threads.

The Qt tests pump the GUI thread with ``qtbot.waitUntil`` (never ``processEvents()``
loops: PySide6 6.12 aborts after ~5,000 of them), so nothing they wait for may need
the main thread's asyncio loop: the server and the App each get a thread of their own.
"""

from __future__ import annotations

import threading
from typing import Any

from appusers import App

GUI_THREAD = threading.main_thread().ident


async def register_confirmed(app: App, server: Any, email: str, password: str) -> None:
    """Register ``email`` and confirm it with the token the server put in its outbox."""
    await app.email_password_auth.register_user(email, password)
    mail = [m for m in server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
