"""appusers: users of an App Services-style backend as reactive state machines.

::

    from appusers import App, Credentials

    async with App("my-app", base_url="http://127.0.0.1:9090") as app:
        user = await app.log_in(Credentials.email_password("ana@example.com", "s3cret!"))
        user.state_changes.subscribe(print)
        print(await user.functions.sum(1, 2))
        await user.log_out()

Importing appusers imports no GUI toolkit and no HTTP server.
"""

import typing as _typing

from ._app import DEFAULT_BASE_URL, App
from ._credentials import Credentials
from ._functions import Functions
from ._models import Connectivity, ConnectivityState, Identity, Profile, Tokens, UserState
from ._retry import RetryPolicy
from ._user import User
from ._version import __version__
from .errors import AppError
from .storage import Storage, StorageIssue
from .transport import Request, Response, StreamingTransport, StreamResponse, Transport

if _typing.TYPE_CHECKING:
    from ._api_keys import ApiKey, ApiKeys
    from ._email_password import EmailPasswordAuth
    from ._events import (
        AccessTokenRefreshed,
        AppEvent,
        CurrentUserChanged,
        CurrentUserLinked,
        CustomDataRefreshed,
        IdentitiesLinked,
        LoggedIn,
        LoggedOut,
        LogoutCause,
        ProfileRefreshed,
        StorageRecovered,
        UserEvent,
        UsersChanged,
    )
    from ._mongo import (
        ChangeEvent,
        ChangeStream,
        DeleteResult,
        InsertManyResult,
        InsertOneResult,
        MongoClient,
        MongoCollection,
        MongoDatabase,
        UpdateResult,
    )

# Services most programs never touch, and the event classes (a dozen attrs classes, built when
# the first event is made), are imported on first access (PEP 562), which keeps
# ``import appusers`` fast; ``from appusers import MongoClient`` works as before.
_LAZY = {
    "ApiKey": "_api_keys", "ApiKeys": "_api_keys", "EmailPasswordAuth": "_email_password",
    **dict.fromkeys(
        ("AccessTokenRefreshed", "AppEvent", "CurrentUserChanged", "CurrentUserLinked", "CustomDataRefreshed",
         "IdentitiesLinked", "LoggedIn", "LoggedOut", "LogoutCause", "ProfileRefreshed", "StorageRecovered",
         "UserEvent", "UsersChanged"),
        "_events",
    ),
    **dict.fromkeys(
        ("ChangeEvent", "ChangeStream", "DeleteResult", "InsertManyResult", "InsertOneResult",
         "MongoClient", "MongoCollection", "MongoDatabase", "UpdateResult"),
        "_mongo",
    ),
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'appusers' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

__all__ = [
    "DEFAULT_BASE_URL",
    "AccessTokenRefreshed",
    "ApiKey",
    "ApiKeys",
    "App",
    "AppError",
    "AppEvent",
    "ChangeEvent",
    "ChangeStream",
    "Connectivity",
    "ConnectivityState",
    "Credentials",
    "CurrentUserChanged",
    "CurrentUserLinked",
    "CustomDataRefreshed",
    "DeleteResult",
    "EmailPasswordAuth",
    "Functions",
    "IdentitiesLinked",
    "Identity",
    "InsertManyResult",
    "InsertOneResult",
    "LoggedIn",
    "LoggedOut",
    "LogoutCause",
    "MongoClient",
    "MongoCollection",
    "MongoDatabase",
    "Profile",
    "ProfileRefreshed",
    "Request",
    "Response",
    "RetryPolicy",
    "Storage",
    "StorageIssue",
    "StorageRecovered",
    "StreamResponse",
    "StreamingTransport",
    "Tokens",
    "Transport",
    "UpdateResult",
    "User",
    "UserEvent",
    "UserState",
    "UsersChanged",
    "__version__",
]
