"""``ServerThread``: a local server on a loop thread of its own, driven by blocking calls.

A test (or a notebook, or a script) that talks to the server through blocking code
(``appusers.sync``) cannot share an event loop with it: the server would wait for the
loop the blocking call holds. Here the server runs on a :class:`LoopThread`, and its test
hooks (outbox, fault injection, token revocation) are plain calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._loop_thread import LoopThread

if TYPE_CHECKING:
    from appusers.server import LocalServer, ServerConfig

__all__ = ["ServerThread"]


class ServerThread:
    """A :class:`appusers.server.LocalServer` running on a thread of its own::

        with ServerThread(config, data_dir) as server:
            with appusers.sync.App(server.app_id, base_url=server.url) as app:
                ...

    Arguments as :class:`~appusers.server.LocalServer`. Started by ``with`` or
    :meth:`start`, stopped by :meth:`close`. The hooks below block until done; the
    ``LocalServer`` itself (:attr:`server`) must only be used on :attr:`loop_thread`.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        data_dir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_token: str | None = None,
    ) -> None:
        from appusers.server import LocalServer

        self._server = LocalServer(config=config, data_dir=data_dir, host=host, port=port,
                                   admin_token=admin_token)
        self._loop: LoopThread | None = None

    def __repr__(self) -> str:
        return f"<ServerThread {self._server!r}>"

    def start(self) -> ServerThread:
        """Start the loop thread and the server on it (returns self)."""
        if self._loop is not None:
            raise RuntimeError("server already started")
        self._loop = LoopThread(name="appusers-server")
        try:
            self._loop.run(self._server.start())
        except BaseException:
            self._loop.stop()
            raise
        return self

    def close(self) -> None:
        """Stop the server and its thread. Idempotent."""
        loop = self._loop
        if loop is not None:
            loop.stop(self._server.close())

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def loop_thread(self) -> LoopThread:
        if self._loop is None:
            raise RuntimeError("server not started")
        return self._loop

    @property
    def server(self) -> LocalServer:
        """The server itself (call its coroutines through ``loop_thread.run``)."""
        return self._server

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def app_id(self) -> str:
        return self._server.app_id

    @property
    def config(self) -> ServerConfig:
        return self._server.config

    @property
    def data_dir(self) -> Path:
        return self._server.data_dir

    @property
    def stats(self) -> dict[str, int]:
        """Handled requests by route name (a copy)."""
        return self.loop_thread.call(lambda: dict(self._server.stats))

    def read_outbox(self) -> list[dict[str, Any]]:
        """Every email queued so far: ``{"email", "token", "tokenId", "kind"}``."""
        return self._server.read_outbox()

    def inject_fault(self, route: str, status: int, body: Mapping[str, Any] | None, times: int = 1) -> None:
        """The next ``times`` requests to ``route`` answer ``status`` with ``body``."""
        self.loop_thread.call(self._server.inject_fault, route, status, body, times)

    def revoke_access_tokens(self, user_id: str) -> None:
        """The user's current access tokens answer 401 InvalidSession (refresh still works)."""
        self.loop_thread.run(self._server.revoke_access_tokens(user_id))

    def revoke_sessions(self, user_id: str) -> None:
        """End every session of the user: refresh and access tokens stop working."""
        self.loop_thread.run(self._server.revoke_sessions(user_id))

    def disable_user(self, user_id: str) -> None:
        self.loop_thread.run(self._server.disable_user(user_id))

    def enable_user(self, user_id: str) -> None:
        self.loop_thread.run(self._server.enable_user(user_id))
