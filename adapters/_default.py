"""Where an App keeps its users when it is given no storage: the platform's user data directory."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ._file import FileStorage

__all__ = ["default_storage", "default_storage_path"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def default_storage_path(app_id: str, base_url: str) -> Path:
    """The store file of ``app_id`` at ``base_url``: one per app id and base URL, under
    ``platformdirs.user_data_dir("appusers")`` (``$XDG_DATA_HOME/appusers`` on Linux,
    ``~/Library/Application Support/appusers`` on macOS, ``%LOCALAPPDATA%\\appusers`` on Windows).

    The directory name is a readable, filesystem-safe form of the app id followed by a hash
    of the exact app id and base URL, so two servers' users never mix and no id can
    escape the directory (``../``, separators, reserved names, case-insensitive filesystems).
    """
    import platformdirs  # not at import time: only an App without a storage needs it

    root = Path(platformdirs.user_data_dir("appusers", appauthor=False))
    return root / "apps" / _store_name(app_id, base_url) / "users.json"


def default_storage(app_id: str, base_url: str) -> FileStorage:
    """The :class:`FileStorage` an App uses when it is given no ``storage``."""
    return FileStorage(default_storage_path(app_id, base_url))


def _store_name(app_id: str, base_url: str) -> str:
    exact = f"{app_id}\n{base_url}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(exact).hexdigest()[:20]
    readable = _UNSAFE.sub("_", app_id).strip("_")[:40] or "app"
    return f"{readable}-{digest}"
