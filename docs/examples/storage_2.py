"""SQLiteStorage: one row per user, for devices that keep many users."""

from pathlib import Path

from appusers import App, Credentials
from appusers.adapters import SQLiteStorage


async def main(base_url: str, app_id: str, workdir: Path) -> None:
    path = workdir / "appusers" / "users.sqlite"  # the directory is created 0700
    async with App(app_id, base_url=base_url, storage=SQLiteStorage(path)) as app:
        ana = await app.log_in(Credentials.function({"username": "ana"}))
        bob = await app.log_in(Credentials.function({"username": "bob"}))

    async with App(app_id, base_url=base_url, storage=SQLiteStorage(path)) as app:
        assert list(app.all_users) == [ana.id, bob.id]
        current = app.current_user
        assert current is not None and current.id == bob.id
