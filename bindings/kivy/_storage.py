"""Where a Kivy app keeps its users: a FileStorage in the app's ``user_data_dir``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appusers.adapters import FileStorage

__all__ = ["storage_for"]


def storage_for(kivy_app: Any, name: str = "appusers-users.json") -> FileStorage:
    """A :class:`~appusers.adapters.FileStorage` at ``<kivy_app.user_data_dir>/<name>``.

    ``user_data_dir`` is the per-platform private directory Kivy gives each app
    (app storage on Android and iOS), so users survive restarts and stay private.
    Reading it creates the directory.
    """
    return FileStorage(Path(kivy_app.user_data_dir) / name)
