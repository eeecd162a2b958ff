"""EncryptedStorage: tokens sealed with AES-256-GCM; the key from the app (or the OS keyring)."""

import os
from pathlib import Path

from appusers import App, Credentials, StorageRecovered
from appusers.adapters import EncryptedStorage, FileStorage


async def main(base_url: str, app_id: str, workdir: Path) -> None:
    path = workdir / "users.json"
    key = os.urandom(32)  # in a real app: from your secret manager, or omit it to use the keyring
    async with App(app_id, base_url=base_url, storage=EncryptedStorage(FileStorage(path), key=key)) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))
        refresh_token = user.refresh_token
    assert refresh_token is not None and refresh_token.encode() not in path.read_bytes()

    # Another key cannot open the store: it is quarantined and the App starts empty, with an event.
    events: list[object] = []
    app = App(app_id, base_url=base_url, storage=EncryptedStorage(FileStorage(path), key=os.urandom(32)))
    app.events.subscribe(events.append)
    async with app:
        assert len(app.all_users) == 0
        assert any(isinstance(e, StorageRecovered) and e.issue.kind == "quarantined" for e in events)
