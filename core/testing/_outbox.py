"""``Outbox``: the emails a local server "sent" (confirmation and password reset), for tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["Mail", "Outbox"]


@attrs.frozen
class Mail:
    """One email of the outbox: ``kind`` is ``"confirm"`` or ``"reset"``."""

    email: str
    kind: str
    token: str = attrs.field(repr=False)
    token_id: str = attrs.field(repr=False)


class Outbox:
    """The emails of a local server's outbox (``<data dir>/outbox.jsonl``), read on each call.

    ::

        mail = outbox.last("ana@example.com", "confirm")
        await app.email_password_auth.confirm_user(mail.token, mail.token_id)
    """

    def __init__(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        self._read = read

    def messages(self, email: str | None = None, kind: str | None = None) -> list[Mail]:
        """The emails sent so far (to ``email``, of ``kind``), oldest first."""
        found = []
        for raw in self._read():
            mail = Mail(str(raw["email"]), str(raw["kind"]), str(raw["token"]), str(raw["tokenId"]))
            if (email is None or mail.email == email) and (kind is None or mail.kind == kind):
                found.append(mail)
        return found

    def last(self, email: str, kind: str = "confirm") -> Mail:
        """The newest email of ``kind`` to ``email``; ``LookupError`` if none was sent."""
        found = self.messages(email, kind)
        if not found:
            raise LookupError(f"no {kind!r} email to {email!r} in the outbox")
        return found[-1]

    async def wait(
        self, email: str, kind: str = "confirm", *, after: int = 0, timeout: float = 5.0
    ) -> Mail:
        """The newest email of ``kind`` to ``email`` once more than ``after`` of them were sent.

        For a server on the caller's event loop: a server that hides which accounts exist
        sends a reset email after its answer, so it may not be there yet when the call returns.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(email, kind)
            if len(found) > after:
                return found[-1]
            if time.monotonic() >= deadline:
                raise LookupError(f"no new {kind!r} email to {email!r} within {timeout} s")
            await asyncio.sleep(0.01)

    def wait_blocking(
        self, email: str, kind: str = "confirm", *, after: int = 0, timeout: float = 5.0
    ) -> Mail:
        """:meth:`wait` for a server on another thread (``ServerThread``)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(email, kind)
            if len(found) > after:
                return found[-1]
            if time.monotonic() >= deadline:
                raise LookupError(f"no new {kind!r} email to {email!r} within {timeout} s")
            time.sleep(0.01)

    def __len__(self) -> int:
        return len(self._read())
