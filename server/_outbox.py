"""The email outbox: confirmation and reset messages as JSON lines in ``<data>/outbox.jsonl``.

A local server sends no mail; tests and developers read the token from here.
The log line names the kind and the address, never the token.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["Outbox"]

log = logging.getLogger("appusers.server")


class Outbox:
    """Append-only JSON-lines file of outgoing emails."""

    def __init__(self, path: Path):
        self.path = path

    def send(self, *, email: str, token: str, token_id: str, kind: str) -> None:
        """Queue one message (``kind`` is ``confirm`` or ``reset``)."""
        line = json.dumps({"email": email, "token": token, "tokenId": token_id, "kind": kind})
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        log.info("outbox: %s email for %s (tokenId %s)", kind, email, token_id)

    def read(self) -> list[dict[str, Any]]:
        """Every message queued so far, oldest first."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
