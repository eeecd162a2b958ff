"""The local App Services-compatible server.

::

    from appusers.server import LocalServer, load_config

    async with LocalServer(config=load_config(None)) as server:
        print(server.url, server.app_id)

It speaks the App Services client HTTP protocol closely enough for the official
realm-web client (the interop suite runs its scenarios against it). Users, sessions
and API keys persist in SQLite under the data directory (or in a PostgreSQL database
several servers share); documents in the embedded document store. See
``server/README.md`` for behaviour details and ``server/example.toml`` for settings.
"""

from ._cli import serve_main
from ._config import DEMO_CUSTOM_TOKEN_SECRET, DEMO_SERVER_API_KEY, ConfigError, ServerConfig, load_config
from ._faults import Fault
from ._function_settings import AuthTrigger, EnvironmentSettings, FunctionSettings
from ._server import LocalServer

__all__ = [
    "DEMO_CUSTOM_TOKEN_SECRET",
    "DEMO_SERVER_API_KEY",
    "AuthTrigger",
    "ConfigError",
    "EnvironmentSettings",
    "Fault",
    "FunctionSettings",
    "LocalServer",
    "ServerConfig",
    "load_config",
    "serve_main",
]
