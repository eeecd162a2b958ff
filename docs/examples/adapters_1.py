"""Storages: FileStorage keeps users between runs; MemoryStorage keeps them for the process only."""

from pathlib import Path

from appusers import App, Credentials
from appusers.adapters import FileStorage, MemoryStorage


async def main(base_url: str, app_id: str, workdir: Path) -> None:
    # FileStorage: one file (mode 0600, in a directory it creates 0700), safe between processes.
    storage = FileStorage(workdir / "appusers" / "users.json")
    async with App(app_id, base_url=base_url, storage=storage) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))
    async with App(app_id, base_url=base_url, storage=FileStorage(storage.path)) as app:
        assert list(app.all_users) == [user.id] and app.current_user is not None

    # MemoryStorage: gone with the process. Two instances given the same
    # dict share one store, like two browser tabs sharing localStorage.
    shared: dict[str, str] = {}
    async with App(app_id, base_url=base_url, storage=MemoryStorage(shared)) as app:
        await app.log_in(Credentials.function({"username": "bob"}))
    async with App(app_id, base_url=base_url, storage=MemoryStorage(shared)) as app:
        assert len(app.all_users) == 1
    async with App(app_id, base_url=base_url, storage=MemoryStorage()) as app:
        assert len(app.all_users) == 0
