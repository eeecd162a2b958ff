"""appusers on Kivy: properties that mirror the App and its users, delivered on Kivy's thread.

::

    from appusers.bindings.kivy import AppModel, UrlRequestTransport, storage_for

    async def main() -> None:
        kivy_app = MyKivyApp()
        async with App("my-app", storage=storage_for(kivy_app), transport=UrlRequestTransport()) as app:
            kivy_app.model = AppModel(app)          # kv: app.model.current_user.name ...
            await kivy_app.async_run(async_lib="asyncio")

    asyncio.run(main())

Importing this package imports Kivy.
"""

from __future__ import annotations

from appusers.bindings.kivy._model import AppModel, UserModel
from appusers.bindings.kivy._scheduler import KivyClockScheduler
from appusers.bindings.kivy._storage import storage_for, user_data_dir
from appusers.bindings.kivy._transport import UrlRequestStreamResponse, UrlRequestTransport

__all__ = [
    "AppModel", "KivyClockScheduler", "UrlRequestStreamResponse", "UrlRequestTransport", "UserModel",
    "storage_for", "user_data_dir",
]
