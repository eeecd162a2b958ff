"""An App driven from a worker thread's own event loop, so its streams publish off the test's thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from appusers import App, Credentials, User

_T = TypeVar("_T")


class WorkerLoop:
    """An asyncio loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="worker-loop", daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the worker loop; await its result from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class WorkerApp:
    """An App living on a :class:`WorkerLoop`; every call is made there."""

    def __init__(self, worker: WorkerLoop, app: App, server: Any) -> None:
        self.worker = worker
        self.app = app
        self.server = server

    async def email_user(self, email: str, password: str = "s3cret-pass") -> User:
        async def go() -> User:
            await self.app.email_password_auth.register_user(email, password)
            outbox = self.server.read_outbox()
            mail = [m for m in outbox if m["email"] == email and m["kind"] == "confirm"][-1]
            await self.app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])
            return await self.app.log_in(Credentials.email_password(email, password))

        return await self.worker.run(go())

    async def log_in(self, credentials: Credentials) -> User:
        return await self.worker.run(self.app.log_in(credentials))

    async def log_out(self, user: User) -> None:
        await self.worker.run(self.app.log_out(user))

    async def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return await self.worker.run(coro)


@asynccontextmanager
async def worker_app(server: Any, **kwargs: Any) -> AsyncIterator[WorkerApp]:
    """An App against ``server`` whose loop, and so whose publishing, is a worker thread's."""
    worker = WorkerLoop()
    try:

        async def make() -> App:
            app = App(server.app_id, base_url=server.url, **kwargs)
            await app.open()
            return app

        app = await worker.run(make())
        try:
            yield WorkerApp(worker, app, server)
        finally:
            await worker.run(app.aclose())
    finally:
        worker.stop()
