"""With a FileStorage, the users and the current user are restored by the next App."""

from pathlib import Path

from appusers import App, Credentials
from appusers.adapters import FileStorage


async def main(base_url: str, app_id: str, workdir: Path) -> None:
    store = workdir / "users.json"
    async with App(app_id, base_url=base_url, storage=FileStorage(store)) as app:
        ana = await app.log_in(Credentials.function({"username": "ana"}))
        bob = await app.log_in(Credentials.function({"username": "bob"}))
        app.switch_user(ana)

    # Next run: no network needed to know who was logged in.
    async with App(app_id, base_url=base_url, storage=FileStorage(store)) as app:
        assert list(app.all_users) == [ana.id, bob.id]
        current = app.current_user
        assert current is not None and current.id == ana.id
        assert await current.functions.sum(1, 2) == 3  # and the restored session works
