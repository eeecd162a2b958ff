"""Without a storage an App keeps its users on the device; MemoryStorage keeps nothing."""

import stat

from appusers import App, Credentials
from appusers.adapters import MemoryStorage, default_storage_path


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:  # persistent by default
        user = await app.log_in(Credentials.function({"username": "ana"}))

    path = default_storage_path(app_id, base_url)  # one store per app id and base URL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    async with App(app_id, base_url=base_url) as app:  # the next start: no network needed
        assert list(app.all_users) == [user.id]
        assert app.current_user is not None and app.current_user.id == user.id

    async with App(app_id, base_url=base_url, storage=MemoryStorage()) as app:
        assert len(app.all_users) == 0  # nothing is read from, or written to, the device
