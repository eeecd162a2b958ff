"""Reading a streamed body as chunks or lines: shared by every transport's ``open_stream``.

A transport only supplies ``next_chunk()`` (``b""`` at the end); these iterators do the
rest. They are classes rather than async generators: a generator abandoned by ``break``
lingers until the loop's asyncgen hook closes it, while these hold nothing to close.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from appusers.errors import TransportError

__all__ = ["MAX_LINE_BYTES", "Chunks", "Lines"]

#: A longer line is a broken or hostile stream, not an event to buffer without end.
MAX_LINE_BYTES: Final = 16 * 1024 * 1024

NextChunk = Callable[[], Awaitable[bytes]]


class Chunks:
    """``async for chunk in Chunks(next_chunk)``: the body as it arrives."""

    def __init__(self, next_chunk: NextChunk) -> None:
        self._next_chunk = next_chunk

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._next_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class Lines:
    """``async for line in Lines(...)``: lines without their LF or CRLF.

    ``where`` is the request as an error may show it (``METHOD url``, no query).
    """

    def __init__(self, next_chunk: NextChunk, method: str, where: str) -> None:
        self._next_chunk = next_chunk
        self._method = method
        self._where = where
        self._buffer = bytearray()
        self._scanned = 0
        self._eof = False

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                return line.removesuffix(b"\r")
            self._scanned = len(self._buffer)
            if self._eof:
                if not self._buffer:
                    raise StopAsyncIteration
                line = bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return line.removesuffix(b"\r")
            if len(self._buffer) > MAX_LINE_BYTES:
                raise TransportError(
                    f"{self._method} {self._where} failed: a line longer than {MAX_LINE_BYTES} bytes",
                    method=self._method,
                    url=self._where,
                )
            chunk = await self._next_chunk()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True
