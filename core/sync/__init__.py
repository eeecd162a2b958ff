"""``appusers.sync``: the SDK with blocking calls, for scripts, notebooks and WSGI apps.

::

    from appusers import Credentials
    from appusers.sync import App

    with App("my-app", base_url="http://127.0.0.1:9090") as app:
        user = app.log_in(Credentials.email_password("ana@example.com", "s3cret!"))
        user.state_changes.subscribe(print)      # called on the App's loop thread
        print(user.functions.sum(1, 2))
        user.log_out()

Each :class:`App` runs an :class:`appusers.App` on a daemon thread with an asyncio loop of
its own (the piece the Qt binding runs on too); every call posts a coroutine there and
waits for it, so any number of threads may share one App. The objects mirror the async
API one to one (same arguments, results, errors and Rx streams), minus the ``await``.
Credentials, events, models and errors are the ones of :mod:`appusers`. See docs/sync.md.
"""

from .._loop_thread import LoopThread
from ._app import App
from ._mongo import ChangeStream, MongoClient, MongoCollection, MongoDatabase
from ._runner import BlockingCallError
from ._services import ApiKeys, EmailPasswordAuth, Functions
from ._user import User

__all__ = [
    "ApiKeys",
    "App",
    "BlockingCallError",
    "ChangeStream",
    "EmailPasswordAuth",
    "Functions",
    "LoopThread",
    "MongoClient",
    "MongoCollection",
    "MongoDatabase",
    "User",
]
