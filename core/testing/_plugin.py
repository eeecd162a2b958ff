"""The pytest fixtures and marker of ``appusers.testing`` (loaded through the ``pytest11`` entry point).

Nothing here imports the server (or anything heavier than ``appusers`` itself) until a
test asks for one of the fixtures, so a test session that does not use them pays nothing
more for the plugin being installed.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

from ._outbox import Outbox
from ._threaded import ServerThread

if TYPE_CHECKING:
    import appusers.sync
    from appusers import App, User
    from appusers.server import LocalServer, ServerConfig

_F = TypeVar("_F", bound=Callable[..., Any])
try:  # async fixtures must be marked as such in pytest-asyncio's strict mode
    import pytest_asyncio

    _async_fixture = cast(Callable[[_F], _F], pytest_asyncio.fixture)
except ImportError:  # pragma: no cover - another async runner (or none: the sync fixtures still work)
    _async_fixture = cast(Callable[[_F], _F], pytest.fixture)

__all__ = [
    "EMAIL",
    "MARKER",
    "PASSWORD",
    "appusers_admin_token",
    "appusers_anonymous_user",
    "appusers_app",
    "appusers_app_factory",
    "appusers_config",
    "appusers_data_dir",
    "appusers_email_user",
    "appusers_outbox",
    "appusers_server",
    "appusers_server_factory",
    "appusers_server_thread",
    "appusers_sync_anonymous_user",
    "appusers_sync_app",
    "appusers_sync_email_user",
    "fast_config",
    "pytest_configure",
    "register_confirmed",
    "with_overrides",
]

#: The marker that overrides ``ServerConfig`` fields for one test (or a class, a module).
MARKER = "appusers_config"
#: The password of the ``appusers_email_user`` fixtures.
PASSWORD = "s3cret-pass"
#: The email of the ``appusers_email_user`` fixtures.
EMAIL = "ana@example.com"

ServerFactory = Callable[..., Awaitable["LocalServer"]]
AppFactory = Callable[..., Awaitable["App"]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**fields): ServerConfig fields the appusers_server fixtures override for this test",
    )


def fast_config(config: ServerConfig | None = None) -> ServerConfig:
    """``config`` (default: the demo settings) with a test-cheap scrypt cost: tests hash many
    passwords, and the real cost (~50 ms each) would dominate them."""
    import attrs

    from appusers.server import ServerConfig

    base = config if config is not None else ServerConfig.demo()
    return attrs.evolve(base, scrypt=attrs.evolve(base.scrypt, n=2**10, r=8, p=1))


def with_overrides(config: ServerConfig, node: pytest.Item | pytest.Collector) -> ServerConfig:
    """``config`` with the fields of every ``appusers_config`` marker on ``node`` (the closest wins)."""
    import attrs

    fields = {field.name for field in attrs.fields(type(config))}
    changes: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers(MARKER))):
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER} takes keyword arguments only (ServerConfig fields)"
            )
        unknown = sorted(set(marker.kwargs) - fields)
        if unknown:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER}: ServerConfig has no field {', '.join(map(repr, unknown))} "
                f"(fields: {', '.join(sorted(fields))})"
            )
        changes.update(marker.kwargs)
    return attrs.evolve(config, **changes) if changes else config


async def register_confirmed(app: appusers.App, outbox: Outbox, email: str, password: str = PASSWORD) -> None:
    """Register ``email`` and confirm it with the token the server put in its outbox."""
    await app.email_password_auth.register_user(email, password)
    mail = outbox.last(email, "confirm")
    await app.email_password_auth.confirm_user(mail.token, mail.token_id)


# -- the server ------------------------------------------------------------------------------


@pytest.fixture
def appusers_config() -> ServerConfig:
    """The server's settings: the demo settings with a cheap scrypt cost. Override this
    fixture for other settings, or use the ``appusers_config(**fields)`` marker."""
    return fast_config()


@pytest.fixture
def appusers_data_dir(tmp_path: Path) -> Path:
    """The server's data directory (created by the server, removed with ``tmp_path``)."""
    return tmp_path / "appusers-server"


@pytest.fixture
def appusers_admin_token() -> str | None:
    """With a token, the server also serves its test hooks over HTTP (``/_appusers/admin/``)."""
    return None


@_async_fixture
async def appusers_server_factory(
    request: pytest.FixtureRequest,
    appusers_config: ServerConfig,
    appusers_data_dir: Path,
    appusers_admin_token: str | None,
) -> AsyncIterator[ServerFactory]:
    """Starts local servers on the test's event loop; closes them all after the test.

    ``await start()`` uses the fixtures' settings (markers applied); ``await
    start(config, data_dir=..., admin_token=...)`` others. Each gets a free port and,
    by default, its own data directory.
    """
    from appusers.server import LocalServer

    servers: list[LocalServer] = []
    numbers = itertools.count()

    async def start(config: ServerConfig | None = None, *, data_dir: Path | None = None,
                    admin_token: str | None = appusers_admin_token) -> LocalServer:
        number = next(numbers)
        if config is None:
            config = with_overrides(appusers_config, request.node)
        if data_dir is None:
            data_dir = appusers_data_dir if number == 0 else appusers_data_dir.with_name(
                f"{appusers_data_dir.name}-{number}"
            )
        server = LocalServer(config=config, data_dir=data_dir, admin_token=admin_token)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.close()


@_async_fixture
async def appusers_server(appusers_server_factory: ServerFactory) -> LocalServer:
    """A local server on 127.0.0.1 (free port, temporary data directory), on the test's loop.

    Its test hooks: ``read_outbox()``, ``inject_fault(route, status, body, times)``,
    ``await revoke_access_tokens(user_id)``, ``await revoke_sessions(user_id)``,
    ``await disable_user(user_id)``, ``stats``.
    """
    return await appusers_server_factory()


@pytest.fixture
def appusers_server_thread(
    request: pytest.FixtureRequest,
    appusers_config: ServerConfig,
    appusers_data_dir: Path,
    appusers_admin_token: str | None,
) -> Iterator[ServerThread]:
    """The same server on a thread of its own, with blocking hooks: for blocking code
    (``appusers.sync``) and tests that are not async."""
    config = with_overrides(appusers_config, request.node)
    with ServerThread(config, appusers_data_dir, admin_token=appusers_admin_token) as server:
        yield server


@pytest.fixture
def appusers_outbox(request: pytest.FixtureRequest) -> Outbox:
    """The emails of the test's server (``appusers_server`` or ``appusers_server_thread``,
    whichever the test uses)."""
    names = request.fixturenames
    name = "appusers_server_thread" if "appusers_server_thread" in names and \
        "appusers_server" not in names else "appusers_server"
    server = request.getfixturevalue(name)
    return Outbox(server.read_outbox)


# -- Apps and users ------------------------------------------------------------------------------


@_async_fixture
async def appusers_app_factory(appusers_server: LocalServer) -> AsyncIterator[AppFactory]:
    """Opens Apps bound to ``appusers_server`` (with a ``MemoryStorage`` unless given another
    ``storage=``); closes them all after the test."""
    from appusers import App
    from appusers.adapters import MemoryStorage

    apps: list[App] = []

    async def make(**kwargs: Any) -> App:
        kwargs.setdefault("base_url", appusers_server.url)
        kwargs.setdefault("storage", MemoryStorage())
        app = App(kwargs.pop("app_id", appusers_server.app_id), **kwargs)
        apps.append(app)
        await app.open()
        return app

    yield make
    for app in apps:
        await app.aclose()


@_async_fixture
async def appusers_app(appusers_app_factory: AppFactory) -> App:
    """An open App bound to ``appusers_server``, keeping its users in memory."""
    return await appusers_app_factory()


@_async_fixture
async def appusers_anonymous_user(appusers_app: App) -> User:
    """A logged-in anonymous user of ``appusers_app``."""
    from appusers import Credentials

    return await appusers_app.log_in(Credentials.anonymous())


@_async_fixture
async def appusers_email_user(appusers_app: App, appusers_outbox: Outbox) -> User:
    """A registered, confirmed, logged-in email/password user (``ana@example.com``,
    password ``appusers.testing.PASSWORD``) of ``appusers_app``."""
    from appusers import Credentials

    await register_confirmed(appusers_app, appusers_outbox, EMAIL, PASSWORD)
    return await appusers_app.log_in(Credentials.email_password(EMAIL, PASSWORD))


@pytest.fixture
def appusers_sync_app(appusers_server_thread: ServerThread) -> Iterator[appusers.sync.App]:
    """A blocking :class:`appusers.sync.App` bound to ``appusers_server_thread`` (users in memory)."""
    from appusers.adapters import MemoryStorage
    from appusers.sync import App as SyncApp

    with SyncApp(appusers_server_thread.app_id, base_url=appusers_server_thread.url,
                 storage=MemoryStorage()) as app:
        yield app


@pytest.fixture
def appusers_sync_anonymous_user(appusers_sync_app: appusers.sync.App) -> appusers.sync.User:
    """A logged-in anonymous user of ``appusers_sync_app``."""
    from appusers import Credentials

    return appusers_sync_app.log_in(Credentials.anonymous())


@pytest.fixture
def appusers_sync_email_user(
    appusers_sync_app: appusers.sync.App, appusers_server_thread: ServerThread
) -> appusers.sync.User:
    """A registered, confirmed, logged-in email/password user of ``appusers_sync_app``."""
    from appusers import Credentials

    auth = appusers_sync_app.email_password_auth
    auth.register_user(EMAIL, PASSWORD)
    mail = Outbox(appusers_server_thread.read_outbox).last(EMAIL, "confirm")
    auth.confirm_user(mail.token, mail.token_id)
    return appusers_sync_app.log_in(Credentials.email_password(EMAIL, PASSWORD))
