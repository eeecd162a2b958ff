"""Swappable HTTP transports and session storages for appusers.

Names are imported on first use (PEP 562), so a program that only needs a storage
does not pay for importing aiohttp (about 0.3 s: most of a CLI command's start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._aiohttp import AiohttpStreamResponse, AiohttpTransport
    from ._default import default_storage, default_storage_path
    from ._encrypted import EncryptedStorage
    from ._file import FileStorage
    from ._memory import MemoryStorage
    from ._mock import MockHandler, MockStreamResponse, MockTransport
    from ._sqlite import SQLiteStorage

__all__ = [
    "AiohttpStreamResponse",
    "AiohttpTransport",
    "EncryptedStorage",
    "FileStorage",
    "MemoryStorage",
    "MockHandler",
    "MockStreamResponse",
    "MockTransport",
    "SQLiteStorage",
    "default_storage",
    "default_storage_path",
]

_HOMES = {
    "AiohttpStreamResponse": "._aiohttp",
    "AiohttpTransport": "._aiohttp",
    "EncryptedStorage": "._encrypted",
    "FileStorage": "._file",
    "MemoryStorage": "._memory",
    "MockHandler": "._mock",
    "MockStreamResponse": "._mock",
    "MockTransport": "._mock",
    "SQLiteStorage": "._sqlite",
    "default_storage": "._default",
    "default_storage_path": "._default",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
