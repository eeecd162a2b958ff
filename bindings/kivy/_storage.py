"""Where a Kivy app keeps its users: a FileStorage in the app's ``user_data_dir``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appusers.adapters import FileStorage

__all__ = ["storage_for", "user_data_dir"]


def user_data_dir(kivy_app: Any) -> Path:
    """``kivy_app.user_data_dir``, created with its missing parents (0700).

    On Linux Kivy creates ``$XDG_CONFIG_HOME/<name>`` (default ``~/.config/<name>``) with a single
    ``os.mkdir``, so with a fresh HOME, where ``~/.config`` does not exist yet, reading the
    property raises FileNotFoundError. The missing parents are per-user configuration
    directories, hence 0700 (the XDG base directory specification's mode).
    """
    try:
        return Path(kivy_app.user_data_dir)
    except FileNotFoundError as exc:
        if not exc.filename:
            raise
        Path(exc.filename).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(kivy_app.user_data_dir)


def storage_for(kivy_app: Any, name: str = "appusers-users.json") -> FileStorage:
    """A :class:`~appusers.adapters.FileStorage` at ``<kivy_app.user_data_dir>/<name>``.

    ``user_data_dir`` is the per-platform private directory Kivy gives each app
    (app storage on Android and iOS), so users survive restarts and stay private.
    The directory and its missing parents are created (see :func:`user_data_dir`).
    """
    return FileStorage(user_data_dir(kivy_app) / name)
