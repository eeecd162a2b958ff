"""One appusers.sync App called by many threads at once, against the real local server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from appusers import Credentials, UserState
from appusers.sync import App, User
from appusers.testing import ServerThread

THREADS = 12
WAIT = 60.0


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` on ``count`` threads released together; their results, or raise the first error."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def body(i: int) -> None:
        start.wait(WAIT)
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if errors:
        raise errors[0]
    return results


def test_many_threads_log_in_call_and_log_out_on_one_app(appusers_sync_app: App) -> None:
    app = appusers_sync_app

    def work(i: int) -> tuple[str, int, list[int]]:
        user = app.log_in(Credentials.anonymous(reuse=False))
        total = user.functions.sum(i, i)
        notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
        notes.insert_many([{"owner_id": user.id, "i": i, "k": k} for k in range(3)])
        mine = sorted(d["k"] for d in notes.find({"owner_id": user.id}))
        user.refresh_access_token()
        assert user.is_logged_in
        return user.id, total, mine

    results = run_together(THREADS, work)
    assert [total for _id, total, _mine in results] == [2 * i for i in range(THREADS)]
    assert all(mine == [0, 1, 2] for _id, _total, mine in results)
    ids = {user_id for user_id, _total, _mine in results}
    assert len(ids) == THREADS and set(app.all_users) == ids
    # Each thread got the one User object of its id.
    assert all(isinstance(u, User) and u.is_logged_in for u in app.all_users.values())

    run_together(THREADS, lambda i: app.all_users[sorted(ids)[i]].log_out())
    assert app.all_users == {} and app.current_user is None


def test_many_threads_share_one_user_through_a_token_revocation(
    appusers_sync_app: App, appusers_server_thread: ServerThread
) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    revoked = threading.Event()

    def work(i: int) -> list[int]:
        got = []
        for n in range(10):
            if i == 0 and n == 3:
                appusers_server_thread.revoke_access_tokens(user.id)
                revoked.set()
            got.append(user.functions.sum(i, n))
        return got

    refreshes = appusers_server_thread.stats.get("refresh", 0)
    results = run_together(8, work)
    assert revoked.is_set()
    # Every thread that met the revoked token waited for the same refresh: the server saw one.
    assert appusers_server_thread.stats.get("refresh", 0) - refreshes == 1
    assert results == [[i + n for n in range(10)] for i in range(8)]
    assert user.state is UserState.LOGGED_IN  # the refresh was transparent to every thread


def test_threads_subscribe_and_dispose_while_others_log_in_and_out(appusers_sync_app: App) -> None:
    app = appusers_sync_app
    heard = [0] * THREADS
    lock = threading.Lock()

    def work(i: int) -> None:
        if i % 2:
            for _ in range(5):
                user = app.log_in(Credentials.anonymous(reuse=False))
                user.log_out()
        else:
            for _ in range(5):

                def count(_users: object, i: int = i) -> None:
                    with lock:
                        heard[i] += 1

                app.users_changes.subscribe(count).dispose()

    run_together(THREADS, work)
    # Every subscription got its replayed value at least.
    assert all(heard[i] >= 5 for i in range(0, THREADS, 2))
    assert app.all_users == {}
