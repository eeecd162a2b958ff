"""``LocalServer``: the App Services-compatible server on a real loopback socket."""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from ._admin_auth import AdminAuth
from ._app import ServerApp
from ._config import ServerConfig
from ._datadir import prepare
from ._errors import ConfigError
from ._faults import Fault
from ._listener import GuardedSite, Limits
from ._outbox import Outbox
from ._sqlite_counters import SqliteCounters
from ._sqlite_store import SqliteUserStore
from ._store import UserStore
from ._tokens import TokenIssuer
from .routes import AdminAccess

__all__ = ["LocalServer", "open_user_store"]

log = logging.getLogger("appusers.server")


async def open_user_store(config: ServerConfig, data_dir: Path, *, migrate: bool = True) -> UserStore:
    """The configured user store: PostgreSQL for a ``[database] url``, else SQLite in ``data_dir``.

    A PostgreSQL schema is migrated to this version first (``migrate``); otherwise an outdated
    one is refused. Connection and schema problems raise a DatabaseError (a ConfigError).
    """
    if config.database.url is None:
        return SqliteUserStore(data_dir / "users.sqlite3")
    from ._pg_store import PostgresUserStore

    return await PostgresUserStore.open(config.database, migrate=migrate)


class LocalServer:
    """A local App Services server; use as ``async with LocalServer() as server``.

    ``config=None`` uses the demo settings; ``data_dir=None`` uses a temporary
    directory deleted on close; ``port=0`` picks a free port. With ``admin_token``
    the test hooks are also served over HTTP under ``/_appusers/admin/``. With admin
    keys in ``config.admin`` the Admin API is served under ``/api/admin/v3.0``
    (:attr:`group_id`, :attr:`app_object_id`). ``clock`` (epoch seconds) dates user
    activity and the anonymous-user purge; tests pass a fake one.

    ``worker`` (set by ``appusers serve --workers N``, see ``_workers``) makes this server
    worker number ``worker`` of a group sharing ``data_dir`` and ``port``: the group's
    supervisor holds the data directory's lock, the documents are opened shared, throttling
    counters live in ``throttle.sqlite3``, the port is bound with ``SO_REUSEPORT`` and every
    response says which worker answered (``X-Appusers-Worker``).
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        data_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_token: str | None = None,
        clock: Callable[[], float] = time.time,
        *,
        worker: int | None = None,
    ):
        self.config = config if config is not None else ServerConfig.demo()
        self._worker = worker
        self._counters: SqliteCounters | None = None
        self._clock = clock
        self._ids: tuple[str, str] | None = None
        self._requested_dir = Path(data_dir) if data_dir is not None else None
        self._host = host
        self._port = port
        self._admin_token = admin_token
        self._temp_dir: Path | None = None
        self._data_dir: Path | None = None
        self._runner: web.AppRunner | None = None
        self._app: ServerApp | None = None
        self._store: UserStore | None = None
        self._documents: Any = None
        self._url: str | None = None
        self._limits = Limits(self.config.http)

    def __repr__(self) -> str:
        return f"LocalServer(url={self._url!r}, app_id={self.app_id!r})"

    @property
    def url(self) -> str:
        """``http://host:port`` (what the location endpoint returns as ``hostname``)."""
        if self._url is None:
            raise RuntimeError("server not started")
        return self._url

    @property
    def app_id(self) -> str:
        """The App Services app id clients must use."""
        return self.config.app_id

    @property
    def data_dir(self) -> Path:
        """The data directory (users, sessions, keys, documents, outbox)."""
        if self._data_dir is None:
            raise RuntimeError("server not started")
        return self._data_dir

    @property
    def group_id(self) -> str:
        """The Admin API's group (project) id: stable per data directory."""
        if self._ids is None:
            raise RuntimeError("server not started")
        return self._ids[0]

    @property
    def app_object_id(self) -> str:
        """The app's ``_id`` in the Admin API (not the client app id): stable per data directory."""
        if self._ids is None:
            raise RuntimeError("server not started")
        return self._ids[1]

    @property
    def stats(self) -> collections.Counter[str]:
        """Handled requests by route name."""
        return self._server_app.stats

    @property
    def _server_app(self) -> ServerApp:
        if self._app is None:
            raise RuntimeError("server not started")
        return self._app

    async def start(self) -> None:
        """Open the stores and start listening."""
        if self._runner is not None:
            raise RuntimeError("server already started")
        if self._data_dir is not None:
            pass  # restarted after stop(): same data, same port
        elif self._requested_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="appusers-server-"))  # already 0700
            self._data_dir = self._temp_dir
        else:
            self._data_dir = self._requested_dir
        try:
            prepare(self._data_dir)
            self._store = await open_user_store(self.config, self._data_dir)
            if isinstance(self._store, SqliteUserStore):
                self._store.check_per_iteration = True  # its requests come through the loop
                self._store.checkpoint_in_background()  # WAL checkpoints off the loop
            if self._worker is not None and isinstance(self._store, SqliteUserStore):
                # Counted in a file every worker writes, not in this process's memory.
                self._counters = SqliteCounters(self._data_dir / "throttle.sqlite3")
                self._store.counters = self._counters  # type: ignore[assignment]
            self._documents = await self._open_documents()
            issuer = TokenIssuer(
                await self._store.signing_secret(),
                self.config.app_id,
                self.config.access_token_lifetime,
                self.config.refresh_token_lifetime,
            )
            self._ids = (await self._store.stable_id("admin/group"), await self._store.stable_id("admin/app"))
            admin = None
            if self.config.admin.enabled:
                admin = AdminAccess(
                    auth=AdminAuth(
                        settings=self.config.admin,
                        throttle=self.config.throttle,
                        store=self._store,
                        signing_secret=await self._store.signing_secret(),
                        group_id=self._ids[0],
                    ),
                    group_id=self._ids[0],
                    app_object_id=self._ids[1],
                )
            self._app = ServerApp(
                config=self.config,
                store=self._store,
                documents=self._documents,
                issuer=issuer,
                outbox=Outbox(self._data_dir / "outbox.jsonl"),
                url=lambda: self.url,
                admin_token=self._admin_token,
                admin=admin,
                clock=self._clock,
            )
            http = self.config.http
            aiohttp_app = self._app.build()
            if self._worker is not None:
                aiohttp_app.on_response_prepare.append(self._say_worker)
            self._runner = web.AppRunner(
                aiohttp_app,
                access_log=None,
                handle_signals=False,
                # Access tokens are kept below this limit (custom data is capped), so a user's own
                # token always fits; the token also travels in a stream's URL.
                max_line_size=http.max_header_bytes,
                max_field_size=http.max_header_bytes,
            )
            await self._runner.setup()
            site = GuardedSite(
                self._runner, self._host, self._port, self._limits, reuse_port=self._worker is not None
            )
            await site.start()
            server = site._server
            assert server is not None
            sock = server.sockets[0].getsockname()  # type: ignore[attr-defined]
            host = f"[{sock[0]}]" if ":" in sock[0] else sock[0]
            self._url = f"http://{host}:{sock[1]}"
            self._port = sock[1]  # a restart after stop() listens at the same URL
            self._app.user_admin.start()
        except BaseException:
            await self.close()
            raise
        log.info(
            "appusers server listening on %s (app id %s, data %s, users in %s, documents in %s)",
            self._url,
            self.app_id,
            self._data_dir,
            self.config.database.safe_url or "SQLite",
            self.config.mongodb.safe_uri or "the data directory",
        )

    async def _open_documents(self) -> Any:
        """The MongoDB service's store: MongoDB for a ``[mongodb] uri``, else embedded in the data dir."""
        from .documents import DocumentStoreError, EmbeddedDocumentStore
        from .documents._pymongo import open_pymongo_store

        settings = self.config.mongodb
        if settings.uri is not None:
            assert settings.safe_uri is not None
            try:
                return await open_pymongo_store(
                    settings.uri, timeout=settings.connect_timeout, shown=settings.safe_uri
                )
            except DocumentStoreError as exc:
                raise ConfigError(str(exc)) from None
        assert self._data_dir is not None
        return EmbeddedDocumentStore(
            self._data_dir / "documents",
            time_limit=self.config.limits.document_timeout,
            watch_buffer_bytes=self.config.limits.watch_buffer_bytes,
            shared=self._worker is not None,
        )

    async def stop(self) -> None:
        """Stop serving, as a crashed or restarting server would: open connections are dropped
        and new ones refused. The data and the port are kept; :meth:`start` serves them again
        at the same URL (sessions, keys and documents survive; faults and counters do not)."""
        app, self._app = self._app, None
        if app is not None:
            app.closing = True
            app.faults.clear()  # hanging requests end now, not at the shutdown timeout
            await app.user_admin.stop()
            for task in list(app.streams):
                task.cancel()
            if app.streams:
                await asyncio.wait(list(app.streams), timeout=5)
            app.hasher.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if app is not None:
            await app.triggers.close()  # before the stores they may use go away
        documents, self._documents = self._documents, None
        if documents is not None:
            await documents.aclose()
        store, self._store = self._store, None
        if store is not None:
            await store.close()
        counters, self._counters = self._counters, None
        if counters is not None:
            counters.close()

    async def _say_worker(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Appusers-Worker"] = str(self._worker)

    async def close(self) -> None:
        """Stop listening, end open streams, close the stores; idempotent."""
        await self.stop()
        self._url = None
        self._data_dir = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ test hooks
    def read_outbox(self) -> list[dict[str, Any]]:
        """Every email queued so far: ``{"email", "token", "tokenId", "kind"}``."""
        return self._server_app.outbox.read()

    async def revoke_access_tokens(self, user_id: str) -> None:
        """Make the user's current access tokens answer 401 InvalidSession (refresh still works)."""
        await self._server_app.revoke_access_tokens(user_id)

    async def revoke_sessions(self, user_id: str) -> None:
        """End every session of the user: refresh tokens and access tokens stop working."""
        await self._server_app.revoke_sessions(user_id)

    async def disable_user(self, user_id: str) -> None:
        """Disable the user as the Admin API does (log-ins refused, sessions ended)."""
        await self._server_app.user_admin.disable(user_id)

    async def enable_user(self, user_id: str) -> None:
        """Enable a disabled user."""
        await self._server_app.user_admin.enable(user_id)

    async def purge_anonymous(self, inactive_days: float | None = None) -> list[str]:
        """Run the anonymous-user purge now (``clock``'s time); the deleted user ids."""
        return await self._server_app.user_admin.purge_anonymous(inactive_days=inactive_days)

    async def wait_for_triggers(self) -> None:
        """Wait until every authentication trigger started so far has finished."""
        await self._server_app.triggers.idle()

    def inject_fault(
        self,
        route: str,
        status: int,
        body: Mapping[str, Any] | None,
        times: int = 1,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next ``times`` requests to ``route`` answer ``status`` with ``body`` (None = empty body)
        and ``headers`` (e.g. ``{"Retry-After": "2"}``)."""
        self._server_app.faults.inject(route, status, body, times, headers=headers)

    def inject_faults(self, route: str, steps: Iterable[Fault | None]) -> None:
        """The next requests to ``route`` take ``steps`` in order, then it is normal again.

        ``None`` serves a request normally; see :class:`~appusers.server.Fault` for the rest::

            server.inject_faults("profile", [Fault.reply(503, headers={"Retry-After": "1"})] * 2)
            server.inject_faults("function_call", [Fault.reset(), None, Fault.hang()])
        """
        self._server_app.faults.sequence(route, steps)

    def release_faults(self) -> None:
        """Let every hanging request go (its connection is closed without an answer)."""
        self._server_app.faults.release()
