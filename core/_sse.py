"""Server-Sent Events as App Services streams them (the ``watch`` streaming call).

The parser is fed one line at a time (LF or CRLF already split off, or not: a
trailing CR is dropped here too) and returns an :class:`SseEvent` when an empty
line dispatches one. It follows the WHATWG event-stream interpretation the way
realm-core's ``WatchStream`` and realm-web's ``WatchStream.ts`` do: ``data``
lines accumulate joined with LF, ``event`` sets the type, ``:`` starts a comment,
``id``/``retry`` and unknown fields are ignored, a dispatch without data is
dropped. Inside ``data`` the server percent-escapes exactly ``%``, LF and CR;
only ``%25``, ``%0A`` and ``%0D`` are undone, any other ``%xx`` stays as is.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["SseEvent", "SseParser", "unescape_data"]

_ESCAPE = re.compile(r"%(25|0A|0D)")
_UNESCAPED = {"25": "%", "0A": "\n", "0D": "\r"}


def unescape_data(data: str) -> str:
    """Undo the server's escaping of ``%``, LF and CR, in one pass (``%250A`` is ``%0A``)."""
    return _ESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], data)


@attrs.frozen
class SseEvent:
    """One dispatched event: ``type`` (``"message"`` when the stream named none) and its data."""

    type: str
    data: str


class SseParser:
    """Line-at-a-time event-stream parser; one instance per stream.

    >>> parser = SseParser()
    >>> [parser.feed(line) for line in (b"event: message", b"data: {}", b"")]
    [None, None, SseEvent(type='message', data='{}')]
    """

    __slots__ = ("_data", "_type")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._type = ""

    def feed(self, line: bytes | str) -> SseEvent | None:
        """Take one line; return the event it dispatches, if any."""
        text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
        if text.endswith("\n"):
            text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
        if not text:
            return self._dispatch()
        if text.startswith(":"):
            return None
        field, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._type = value
        elif field == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, kind = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return SseEvent(kind or "message", unescape_data("\n".join(data)))
