"""``appusers.testing``: a pytest plugin for code that uses appusers, and what it is made of.

Installed with appusers, the plugin is loaded by pytest through the ``pytest11`` entry point
(disable it with ``-p no:appusers.testing``). Its fixtures give a test a real local server
on 127.0.0.1, Apps bound to it and logged-in users::

    async def test_sum(appusers_anonymous_user):
        assert await appusers_anonymous_user.functions.sum(1, 2) == 3

    @pytest.mark.appusers_config(access_token_lifetime=60)
    def test_blocking(appusers_sync_anonymous_user, appusers_server_thread):
        ...

The server is only imported when a test asks for it. See docs/testing.md.
"""

from ._outbox import Mail, Outbox
from ._plugin import (
    EMAIL,
    MARKER,
    PASSWORD,
    appusers_admin_token,
    appusers_anonymous_user,
    appusers_app,
    appusers_app_factory,
    appusers_config,
    appusers_data_dir,
    appusers_email_user,
    appusers_outbox,
    appusers_server,
    appusers_server_factory,
    appusers_server_thread,
    appusers_sync_anonymous_user,
    appusers_sync_app,
    appusers_sync_email_user,
    fast_config,
    pytest_configure,
    register_confirmed,
    with_overrides,
)
from ._threaded import ServerThread

__all__ = [
    "EMAIL",
    "MARKER",
    "PASSWORD",
    "Mail",
    "Outbox",
    "ServerThread",
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
