"""The blocking ``App``: an :class:`appusers.App` running on a loop thread of its own."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from reactivex import Observable

import appusers

from .._app import DEFAULT_BASE_URL
from .._credentials import Credentials
from .._events import AppEvent
from .._loop_thread import LoopThread
from ..storage import Storage, StorageIssue
from ..transport import Transport
from ._runner import Runner, refuse_in_running_loop, same
from ._services import EmailPasswordAuth
from ._user import User

__all__ = ["App"]


class App:
    """The users of the App Services app ``app_id``, with blocking calls::

        with appusers.sync.App("my-app", base_url="http://127.0.0.1:9090") as app:
            user = app.log_in(Credentials.anonymous())
            print(user.functions.sum(1, 2))

    Arguments as :class:`appusers.App`. The App runs on a daemon thread with its own
    asyncio loop, started here (the users kept in ``storage`` are restored before the
    constructor returns) and stopped by :meth:`close` or the end of the ``with`` block.
    Any number of threads may call one App at once.

    A call made inside a running asyncio loop raises :class:`BlockingCallError` (it would
    stall that loop; use :class:`appusers.App` there) unless ``allow_running_loop=True`` —
    what a notebook needs, since its cells run inside the kernel's loop. A call made from a
    stream callback or listener (they run on the App's own thread) raises it too.
    """

    def __init__(
        self,
        app_id: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        storage: Storage | None = None,
        transport: Transport | None = None,
        timeout: float = 60.0,
        refresh_leeway: float = 30.0,
        allow_running_loop: bool = False,
    ) -> None:
        if not isinstance(allow_running_loop, bool):
            from ..errors import InvalidArgumentError

            raise InvalidArgumentError("allow_running_loop must be True or False")
        if not allow_running_loop:
            refuse_in_running_loop()
        loop = LoopThread(name=f"appusers-sync-{app_id}"[:60])
        self._runner = Runner(loop, allow_running_loop=allow_running_loop)
        self._users: dict[str, User] = {}
        self._users_lock = threading.Lock()
        try:
            self._app: appusers.App = loop.call(lambda: appusers.App(
                app_id, base_url=base_url, storage=storage, transport=transport, timeout=timeout,
                refresh_leeway=refresh_leeway,
            ))
        except BaseException:
            loop.stop()
            raise
        # Closes the App and stops its thread when this object is collected or at exit, if
        # close() was not called: no unclosed HTTP session, no half-written storage.
        self._finalizer = weakref.finalize(self, _shutdown, loop, self._app)
        try:
            self._runner.run(self._app.open())
        except BaseException:
            self._finalizer()
            raise

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<appusers.sync.App id={self.id!r} base_url={self.base_url!r} {state}>"

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> App:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the App (what is in flight is cancelled, the transport closed) and stop its
        thread. Idempotent."""
        if not self._finalizer.alive:
            return
        self._runner.check_caller()
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def core(self) -> appusers.App:
        """The async :class:`appusers.App` behind this one (use it on :attr:`loop_thread` only)."""
        return self._app

    @property
    def loop_thread(self) -> LoopThread:
        """The thread and asyncio loop the App runs on."""
        return self._runner.loop

    # -- settings --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._app.id

    @property
    def base_url(self) -> str:
        return self._app.base_url

    @property
    def storage(self) -> Storage:
        return self._app.storage

    @property
    def storage_issues(self) -> list[StorageIssue]:
        """What was recovered from when the users were restored."""
        return self._runner.call(lambda: list(self._app.storage_issues))

    @property
    def timeout(self) -> float:
        return self._app.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._runner.call(setattr, self._app, "timeout", value)

    @property
    def email_password_auth(self) -> EmailPasswordAuth:
        """Register, confirm and reset email/password identities."""
        return EmailPasswordAuth(self._runner, self._app.email_password_auth)

    # -- users -------------------------------------------------------------------------------

    def _wrap(self, user: appusers.User) -> User:
        with self._users_lock:
            known = self._users.get(user.id)
            if known is None or known._user is not user:
                known = self._users[user.id] = User(self, self._runner, user)
            return known

    def _wrap_optional(self, user: appusers.User | None) -> User | None:
        return None if user is None else self._wrap(user)

    def _unwrap(self, user: User) -> appusers.User:
        if not isinstance(user, User):
            from ..errors import InvalidArgumentError

            raise InvalidArgumentError("expected an appusers.sync.User")
        return user._user

    @property
    def current_user(self) -> User | None:
        """The current logged-in user (see :attr:`appusers.App.current_user`), or None."""
        return self._wrap_optional(self._runner.call(lambda: self._app.current_user))

    @property
    def all_users(self) -> Mapping[str, User]:
        """Every user that is not removed, by id, in storage order."""
        users = self._runner.call(lambda: tuple(self._app.all_users.values()))
        return {user.id: self._wrap(user) for user in users}

    def switch_user(self, user: User) -> None:
        """Make ``user`` (logged in, of this App) the current user."""
        self._runner.call(self._app.switch_user, self._unwrap(user))

    def log_in(self, credentials: Credentials, *, timeout: float | None = None) -> User:
        """Log in; return the (same, for a known identity) ``User``, now current."""
        return self._wrap(self._runner.run(self._app.log_in(credentials, timeout=timeout)))

    def log_out(self, user: User | None = None) -> None:
        """Log ``user`` (default: the current user) out; anonymous users are removed."""
        self._runner.run(self._app.log_out(None if user is None else self._unwrap(user)))

    def remove_user(self, user: User) -> None:
        """Forget ``user`` on this device (logging it out first if needed)."""
        self._runner.run(self._app.remove_user(self._unwrap(user)))

    def delete_user(self, user: User, *, timeout: float | None = None) -> None:
        """Delete ``user`` on the server, then forget it here."""
        self._runner.run(self._app.delete_user(self._unwrap(user), timeout=timeout))

    # -- streams and listeners -------------------------------------------------------------

    @property
    def events(self) -> Observable[AppEvent]:
        """App-level events (delivered on the App's loop thread)."""
        return self._runner.observe(lambda: self._app.events, same)

    @property
    def current_user_changes(self) -> Observable[User | None]:
        """The current user on subscribe, then each change (delivered on the loop thread)."""
        return self._runner.observe(lambda: self._app.current_user_changes, self._wrap_optional)

    @property
    def users_changes(self) -> Observable[tuple[User, ...]]:
        """The users on subscribe, then whenever the list or a state changes (loop thread)."""
        return self._runner.observe(
            lambda: self._app.users_changes, lambda users: tuple(self._wrap(u) for u in users)
        )

    def add_listener(self, callback: Callable[[AppEvent], Any] | Callable[[], Any]) -> None:
        """Call ``callback(event)`` (or ``callback()``) on the loop thread for every app event."""
        self._runner.call(self._app.add_listener, callback)

    def remove_listener(self, callback: Callable[[AppEvent], Any] | Callable[[], Any]) -> None:
        self._runner.call(self._app.remove_listener, callback)

    def remove_all_listeners(self) -> None:
        self._runner.call(self._app.remove_all_listeners)


_closing: set[asyncio.Task[None]] = set()


def _shutdown(loop: LoopThread, app: appusers.App) -> None:
    if loop.in_loop_thread():
        # Collected on its own thread (the last reference went in a callback): close there
        # and let the loop stop itself; nobody can wait for the thread from inside it.
        async def close_and_stop() -> None:
            try:
                await app.aclose()
            finally:
                asyncio.get_running_loop().stop()

        task = loop.loop.create_task(close_and_stop())
        _closing.add(task)
        task.add_done_callback(_closing.discard)
        return
    loop.stop(app.aclose())
