"""The appusers.testing pytest plugin, run by pytest itself (``pytester``) on test files that use it.

Each pytester session costs a pytest start-up, so the files that should pass (or fail in a
stated way) share one session, and each claim is checked on that session's report.
"""

from __future__ import annotations

import textwrap

import pytest

INI = """\
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""
#: Plugins the generated tests do not need; skipping them keeps each session's start-up short.
TRIM = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:pytest-qt")

CONFTEST = """
import pytest

@pytest.fixture
def appusers_admin_token():
    return "hooks-token"
"""

ASYNC_FIXTURES = """
import aiohttp
import pytest
from appusers import App, Credentials, UserState
from appusers.adapters import MemoryStorage
from appusers.errors import InvalidSessionError, ServiceError
from appusers.server import LocalServer
from appusers.testing import EMAIL

async def test_server(appusers_server, appusers_data_dir):
    assert isinstance(appusers_server, LocalServer)
    assert appusers_server.url.startswith("http://127.0.0.1:")
    assert appusers_server.data_dir == appusers_data_dir and appusers_data_dir.is_dir()
    url = f"{appusers_server.url}/api/client/v2.0/app/{appusers_server.app_id}/location"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        assert reply.status == 200

async def test_app_is_bound_and_in_memory(appusers_app, appusers_server):
    assert isinstance(appusers_app, App) and isinstance(appusers_app.storage, MemoryStorage)
    assert appusers_app.base_url == appusers_server.url and appusers_app.id == appusers_server.app_id

async def test_anonymous_user(appusers_anonymous_user, appusers_app):
    assert appusers_anonymous_user.is_logged_in and appusers_anonymous_user.is_anonymous()
    assert appusers_app.current_user is appusers_anonymous_user
    assert await appusers_anonymous_user.functions.sum(1, 2) == 3

async def test_email_user_and_outbox(appusers_email_user, appusers_outbox):
    assert appusers_email_user.profile.email == EMAIL
    assert [m.kind for m in appusers_outbox.messages(EMAIL)] == ["confirm"]
    assert "token" not in repr(appusers_outbox.last(EMAIL))

async def test_outbox_waits_for_a_late_email(appusers_email_user, appusers_app, appusers_outbox):
    await appusers_app.email_password_auth.send_reset_password_email(EMAIL)
    mail = await appusers_outbox.wait(EMAIL, "reset")
    await appusers_app.email_password_auth.reset_password(mail.token, mail.token_id, "n3w-pass")
    with pytest.raises(LookupError):
        appusers_outbox.last("nobody@example.com")

async def test_fault_injection(appusers_server, appusers_anonymous_user):
    appusers_server.inject_fault("function_call", 500, {"error": "boom", "error_code": "Internal"})
    with pytest.raises(ServiceError):
        await appusers_anonymous_user.functions.sum(1)
    assert await appusers_anonymous_user.functions.sum(1) == 1

async def test_token_revocation(appusers_server, appusers_anonymous_user):
    await appusers_server.revoke_sessions(appusers_anonymous_user.id)
    with pytest.raises(InvalidSessionError):
        await appusers_anonymous_user.functions.sum(1)
    assert appusers_anonymous_user.state is not UserState.LOGGED_IN

async def test_more_apps_and_servers(appusers_app_factory, appusers_server_factory, appusers_server):
    other = await appusers_server_factory()
    assert other.url != appusers_server.url and other.data_dir != appusers_server.data_dir
    app = await appusers_app_factory(base_url=other.url)
    user = await app.log_in(Credentials.anonymous())
    assert await user.functions.sum(2) == 2

async def test_admin_token_fixture(appusers_server):
    url = appusers_server.url + "/_appusers/admin/outbox"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers={"X-Appusers-Admin": "hooks-token"}) as reply:
            assert reply.status == 200
        async with http.get(url, headers={"X-Appusers-Admin": "wrong"}) as reply:
            assert reply.status == 403
"""

FRESH_SERVERS = """
import socket
from urllib.parse import urlsplit

seen = []

async def test_first(appusers_server, appusers_anonymous_user):
    seen.append((appusers_server.url, appusers_server.data_dir))

def test_the_first_server_is_gone():
    where = urlsplit(seen[0][0])
    try:
        socket.create_connection((where.hostname, where.port), timeout=2).close()
    except OSError:
        pass
    else:
        raise AssertionError("the first test's server still listens")

async def test_second(appusers_server, appusers_app):
    assert appusers_server.url != seen[0][0] and appusers_server.data_dir != seen[0][1]
    assert appusers_app.all_users == {}  # nothing carried over
"""

OVERRIDES = """
import pytest
from appusers.server import ServerConfig

pytestmark = pytest.mark.appusers_config(app_id="module-app", access_token_lifetime=120)

async def test_module_marker(appusers_server):
    assert appusers_server.app_id == "module-app"
    assert appusers_server.config.access_token_lifetime == 120

@pytest.mark.appusers_config(app_id="test-app")
async def test_closest_marker_wins(appusers_server, appusers_app):
    assert appusers_server.app_id == appusers_app.id == "test-app"
    assert appusers_server.config.access_token_lifetime == 120

@pytest.mark.appusers_config(app_id="thread-app")
def test_marker_reaches_the_thread_server(appusers_server_thread):
    assert appusers_server_thread.app_id == "thread-app"

class TestOverriddenConfig:
    @pytest.fixture
    def appusers_config(self):
        return ServerConfig(app_id="plain-app")  # not the demo settings

    async def test_it(self, appusers_server):
        assert appusers_server.app_id == "module-app"  # the marker still applies on top
        assert appusers_server.config.functions_module is None
"""

TYPOS = """
import pytest

@pytest.mark.appusers_config(acces_token_lifetime=60)
async def test_typo(appusers_server):
    pass

@pytest.mark.appusers_config(60)
def test_positional(appusers_server_thread):
    pass
"""

BLOCKING = """
import pytest
from appusers import UserState
from appusers.errors import InvalidSessionError, ServiceError
from appusers.sync import App, User
from appusers.testing import EMAIL, ServerThread

def test_sync_app(appusers_sync_app, appusers_server_thread):
    assert isinstance(appusers_sync_app, App) and isinstance(appusers_server_thread, ServerThread)
    assert appusers_sync_app.base_url == appusers_server_thread.url

def test_sync_users(appusers_sync_anonymous_user, appusers_sync_email_user, appusers_sync_app):
    assert isinstance(appusers_sync_anonymous_user, User)
    assert appusers_sync_email_user.profile.email == EMAIL
    assert appusers_sync_app.current_user is appusers_sync_email_user
    assert appusers_sync_anonymous_user.functions.sum(4, 5) == 9

def test_hooks(appusers_server_thread, appusers_sync_anonymous_user, appusers_outbox):
    user = appusers_sync_anonymous_user
    before = appusers_server_thread.stats.get("function_call", 0)
    appusers_server_thread.inject_fault("function_call", 500, {"error": "boom", "error_code": "x"})
    with pytest.raises(ServiceError):
        user.functions.sum(1)
    assert appusers_server_thread.stats["function_call"] == before + 1
    appusers_server_thread.revoke_access_tokens(user.id)
    assert user.functions.sum(1) == 1  # refreshed and retried
    appusers_server_thread.revoke_sessions(user.id)
    with pytest.raises(InvalidSessionError):
        user.functions.sum(1)
    assert user.state is not UserState.LOGGED_IN
    assert len(appusers_outbox) == 0
"""


def files(pytester: pytest.Pytester, **sources: str) -> None:
    pytester.makepyfile(**{name: textwrap.dedent(source) for name, source in sources.items()})


def test_the_fixtures_in_a_session_of_their_own(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="auto"))
    pytester.makeconftest(CONFTEST)
    files(pytester, test_async_fixtures=ASYNC_FIXTURES, test_fresh=FRESH_SERVERS, test_overrides=OVERRIDES,
          test_typos=TYPOS, test_blocking=BLOCKING)
    result = pytester.runpytest(*TRIM, "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=19, errors=2)
    result.stdout.fnmatch_lines_random([
        "*test_async_fixtures.py::test_token_revocation PASSED*",
        "*test_fresh.py::test_the_first_server_is_gone PASSED*",
        "*test_overrides.py::TestOverriddenConfig::test_it PASSED*",
        "*test_blocking.py::test_hooks PASSED*",
        "*test_typos.py::test_typo ERROR*",
        "*test_typos.py::test_positional ERROR*",
        # A misspelled field is named, with the fields there are.
        "*ServerConfig has no field 'acces_token_lifetime' (fields: *access_token_lifetime*",
        "*appusers_config takes keyword arguments only*",
    ])


def test_strict_asyncio_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="strict"))
    files(pytester, test_strict="""
        import pytest

        @pytest.mark.asyncio
        async def test_strict(appusers_anonymous_user):
            assert await appusers_anonymous_user.functions.sum(2, 2) == 4
    """)
    pytester.runpytest(*TRIM).assert_outcomes(passed=1)


def test_the_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="auto"))
    files(pytester, test_needs_it="""
        def test_needs_it(appusers_server_thread):
            pass
    """)
    result = pytester.runpytest(*TRIM, "-p", "no:appusers.testing")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'appusers_server_thread' not found*"])


def test_a_session_that_does_not_use_it_does_not_import_the_server(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="auto"))
    files(pytester, test_unrelated="""
        import sys

        def test_nothing_heavy_is_loaded(request):
            assert request.config.pluginmanager.has_plugin("appusers.testing")
            loaded = [m for m in sys.modules if m.startswith(("appusers.server", "appusers.sync"))]
            assert loaded == []
    """)
    # A fresh interpreter: this one imported the server long ago.
    pytester.runpytest_subprocess(*TRIM).assert_outcomes(passed=1)
