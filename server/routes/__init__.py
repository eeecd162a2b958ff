"""The server's HTTP routes, one module per route group.

Each group is a class built with the :class:`~appusers.server._app.ServerApp` (the shared
state and request plumbing) whose ``routes()`` lists its aiohttp route definitions.
"""

from __future__ import annotations

from .admin import AdminAccess, AdminRoutes
from .api_keys import ApiKeyRoutes
from .functions import FunctionRoutes
from .hooks import HookRoutes
from .session import SessionRoutes
from .userpass import UserpassRoutes

__all__ = [
    "AdminAccess",
    "AdminRoutes",
    "ApiKeyRoutes",
    "FunctionRoutes",
    "HookRoutes",
    "SessionRoutes",
    "UserpassRoutes",
]
