"""Swappable HTTP transports and session storages for appusers."""

from ._aiohttp import AiohttpStreamResponse, AiohttpTransport
from ._file import FileStorage
from ._memory import MemoryStorage
from ._mock import MockHandler, MockStreamResponse, MockTransport

__all__ = [
    "AiohttpStreamResponse",
    "AiohttpTransport",
    "FileStorage",
    "MemoryStorage",
    "MockHandler",
    "MockStreamResponse",
    "MockTransport",
]
