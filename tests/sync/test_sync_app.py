"""appusers.sync against the real local server: the blocking App, its users and services."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from bson import ObjectId

from appusers import ChangeEvent, Credentials, CurrentUserChanged, LoggedIn, LoggedOut, UserState
from appusers.adapters import FileStorage, MemoryStorage
from appusers.errors import (
    AppClosedError,
    InvalidArgumentError,
    InvalidPasswordError,
    InvalidSessionError,
    UserNotFoundError,
)
from appusers.sync import App, ChangeStream, User
from appusers.testing import PASSWORD, Outbox, ServerThread

WAIT = 10.0


def test_log_in_call_functions_and_log_out(appusers_sync_app: App) -> None:
    app = appusers_sync_app
    assert app.current_user is None and app.all_users == {}
    user = app.log_in(Credentials.anonymous())
    assert isinstance(user, User) and user.is_logged_in and user.is_anonymous()
    assert app.current_user is user and app.all_users == {user.id: user}
    assert user.functions.sum(1, 2, 3) == 6
    assert user.call_function("echo", "x", {"n": 1}) == ["x", {"n": 1}]
    assert user.functions["whoami"]()["id"] == user.id
    assert user.identities[0].provider_type == "anon-user"
    user.log_out()
    assert user.state is UserState.REMOVED  # anonymous users go on log-out
    assert app.current_user is None and app.all_users == {}


def test_the_same_user_object_everywhere(appusers_sync_app: App) -> None:
    app = appusers_sync_app
    user = app.log_in(Credentials.anonymous())
    seen: list[User | None] = []
    app.current_user_changes.subscribe(seen.append).dispose()
    users: list[tuple[User, ...]] = []
    app.users_changes.subscribe(users.append).dispose()
    assert seen == [user] and users == [(user,)]
    assert app.current_user is user and app.all_users[user.id] is user
    assert app.log_in(Credentials.anonymous()) is user  # reused, same object


def test_streams_replay_and_follow_changes(appusers_sync_app: App) -> None:
    app = appusers_sync_app
    user = app.log_in(Credentials.anonymous(reuse=False))
    states: list[UserState] = []
    events: list[object] = []
    app_events: list[object] = []
    threads: set[str] = set()

    def on_state(state: UserState) -> None:
        threads.add(threading.current_thread().name)
        states.append(state)

    user.state_changes.subscribe(on_state)
    user.events.subscribe(events.append)
    app.events.subscribe(app_events.append)
    user.log_out()
    assert states == [UserState.LOGGED_IN, UserState.REMOVED]
    assert [type(e) for e in events] == [LoggedOut]
    assert CurrentUserChanged(None) in app_events
    # Delivered on the App's loop thread, not the caller's.
    assert threads == {app.loop_thread.thread.name} != {threading.current_thread().name}


def test_listeners(appusers_sync_app: App) -> None:
    app = appusers_sync_app
    heard: list[object] = []
    app.add_listener(heard.append)
    user = app.log_in(Credentials.anonymous())
    user_heard: list[object] = []
    user.add_listener(user_heard.append)
    user.refresh_access_token()
    assert any(isinstance(e, CurrentUserChanged) for e in heard)
    assert user_heard and all(e.user_id == user.id for e in user_heard)  # type: ignore[attr-defined]
    app.remove_listener(heard.append)
    user.remove_all_listeners()
    count, user_count = len(heard), len(user_heard)
    user.log_out()
    assert len(heard) == count and len(user_heard) == user_count


def test_email_password_and_api_keys(appusers_sync_app: App, appusers_server_thread: ServerThread) -> None:
    app = appusers_sync_app
    auth = app.email_password_auth
    auth.register_user("bo@example.com", PASSWORD)
    mail = [m for m in appusers_server_thread.read_outbox() if m["email"] == "bo@example.com"][-1]
    auth.confirm_user(mail["token"], mail["tokenId"])
    with pytest.raises(InvalidPasswordError):
        app.log_in(Credentials.email_password("bo@example.com", "wrong-password"))
    assert app.all_users == {}  # nothing half-made
    user = app.log_in(Credentials.email_password("bo@example.com", PASSWORD))
    assert user.profile.email == "bo@example.com"
    key = user.api_keys.create("ci")
    assert key.key and key.name == "ci" and not key.disabled
    assert [k.id for k in user.api_keys.fetch_all()] == [key.id]
    user.api_keys.disable(key.id)
    assert user.api_keys.fetch(key.id).disabled
    user.api_keys.enable(key.id)
    spare = user.api_keys.create("spare")
    user.api_keys.delete(spare.id)
    assert [k.id for k in user.api_keys.fetch_all()] == [key.id]
    with pytest.raises(InvalidArgumentError):
        user.api_keys.fetch("not-an-object-id")
    auth.send_reset_password_email("bo@example.com")
    # The server sends it after answering (it hides which accounts exist): wait for it.
    reset = Outbox(appusers_server_thread.read_outbox).wait_blocking("bo@example.com", "reset")
    auth.reset_password(reset.token, reset.token_id, "new-pass-123")
    user.log_out()
    assert app.log_in(Credentials.email_password("bo@example.com", "new-pass-123")) is user
    assert app.log_in(Credentials.api_key(key.key)) is user


def test_custom_data_and_profile(appusers_sync_app: App) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    assert user.custom_data == {}
    user.functions.set_custom_data({"plan": "pro"})
    assert user.refresh_custom_data()["plan"] == "pro"
    assert user.custom_data["plan"] == "pro"
    assert user.refresh_profile() == user.profile
    with pytest.raises(TypeError):
        user.custom_data["plan"] = "free"  # type: ignore[index]


def test_server_side_revocation_reaches_the_user(appusers_sync_app: App,
                                                 appusers_server_thread: ServerThread) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    appusers_server_thread.revoke_access_tokens(user.id)
    assert user.functions.sum(1) == 1  # refreshed and retried
    appusers_server_thread.revoke_sessions(user.id)
    with pytest.raises(InvalidSessionError):
        user.functions.sum(1)
    assert user.state is not UserState.LOGGED_IN


def test_injected_faults_arrive_as_typed_errors(appusers_sync_app: App,
                                               appusers_server_thread: ServerThread) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    appusers_server_thread.inject_fault(
        "function_call", 404, {"error": "no", "error_code": "FunctionNotFound", "link": ""}
    )
    from appusers.errors import FunctionNotFoundError

    with pytest.raises(FunctionNotFoundError):
        user.functions.sum(1)
    assert user.functions.sum(2) == 2


def test_mongo_crud(appusers_sync_app: App) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
    assert notes.name == "notes" and notes.database.name == "app" and notes.user is user
    first = notes.insert_one({"owner_id": user.id, "n": 1})
    assert isinstance(first.inserted_id, ObjectId)
    notes.insert_many([{"owner_id": user.id, "n": n} for n in (2, 3, 4)])
    assert notes.count() == 4
    assert [d["n"] for d in notes.find(sort={"n": -1}, limit=2)] == [4, 3]
    assert notes.find_one({"n": 2}, projection={"_id": 0, "n": 1}) == {"n": 2}
    assert notes.update_one({"n": 1}, {"$set": {"n": 10}}).modified_count == 1
    assert notes.update_many({}, {"$inc": {"n": 1}}).matched_count == 4
    assert notes.aggregate([{"$group": {"_id": None, "total": {"$sum": "$n"}}}])[0]["total"] == 23
    assert notes.find_one_and_update({"n": 11}, {"$set": {"n": 0}}, return_new_document=True)["n"] == 0
    assert notes.find_one_and_replace({"n": 0}, {"owner_id": user.id, "n": 100})["n"] == 0
    assert notes.find_one_and_delete({"n": 100})["n"] == 100
    assert notes.delete_one({"n": 3}).deleted_count == 1
    assert notes.delete_many({}).deleted_count == 2
    with pytest.raises(InvalidArgumentError):
        notes.find("not a filter")  # type: ignore[arg-type]


def test_watch_blocks_until_a_change(appusers_sync_app: App) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
    with notes.watch(filter={"operationType": "insert"}) as changes:
        assert isinstance(changes, ChangeStream) and not changes.closed
        writer = threading.Thread(target=notes.insert_one, args=({"owner_id": user.id, "n": 7},))
        writer.start()
        change = next(changes)
        writer.join(WAIT)
    assert isinstance(change, ChangeEvent) and change.full_document["n"] == 7
    assert changes.closed
    changes.close()  # idempotent


def test_watch_changes_is_the_same_rx_stream(appusers_sync_app: App) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    notes = user.mongo_client("mongodb-atlas").db("app").collection("notes")
    got: list[ChangeEvent] = []
    arrived = threading.Event()

    def on_change(change: ChangeEvent) -> None:
        got.append(change)
        arrived.set()

    subscription = notes.watch_changes().subscribe(on_change)
    try:
        # The stream opens in the background; insert until the first change is heard.
        for n in range(50):
            notes.insert_one({"owner_id": user.id, "n": n})
            if arrived.wait(0.2):
                break
        assert got and got[0].operation_type == "insert"
    finally:
        subscription.dispose()


def test_users_survive_a_restart_in_file_storage(
    appusers_server_thread: ServerThread, tmp_path: Path
) -> None:
    path = tmp_path / "users.json"
    server = appusers_server_thread
    with App(server.app_id, base_url=server.url, storage=FileStorage(path)) as app:
        user_id = app.log_in(Credentials.anonymous()).id
    with App(server.app_id, base_url=server.url, storage=FileStorage(path)) as again:
        user = again.current_user
        assert user is not None and user.id == user_id and user.functions.sum(2, 2) == 4


def test_switch_remove_and_delete(appusers_sync_app: App) -> None:
    app = appusers_sync_app
    first = app.log_in(Credentials.anonymous(reuse=False))
    second = app.log_in(Credentials.anonymous(reuse=False))
    assert app.current_user is second
    app.switch_user(first)
    assert app.current_user is first
    app.remove_user(second)
    assert second.state is UserState.REMOVED and set(app.all_users) == {first.id}
    with pytest.raises(UserNotFoundError):
        app.remove_user(second)
    app.delete_user(first)
    assert app.all_users == {}
    with pytest.raises(InvalidArgumentError):
        app.switch_user(first.core)  # type: ignore[arg-type]
    app.log_out()  # no current user: nothing to do


def test_wait_for(appusers_sync_app: App) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous())
    user.wait_for(UserState.LOGGED_IN)  # already there
    with pytest.raises(TimeoutError):
        user.wait_for(UserState.LOGGED_OUT, timeout=0.05)
    done = threading.Thread(target=user.log_out)
    done.start()
    user.wait_for(UserState.REMOVED, timeout=WAIT)
    done.join(WAIT)


def test_logged_in_event_reaches_an_early_subscriber(appusers_sync_app: App) -> None:
    user = appusers_sync_app.log_in(Credentials.anonymous(reuse=False))
    events: list[object] = []
    user.events.subscribe(events.append)
    appusers_sync_app.log_in(Credentials.anonymous(reuse=False))
    appusers_sync_app.switch_user(user)
    user.log_out()
    assert [type(e) for e in events] == [LoggedOut]
    assert not any(isinstance(e, LoggedIn) for e in events)


def test_memory_storage_is_used_by_the_fixture(appusers_sync_app: App) -> None:
    assert isinstance(appusers_sync_app.storage, MemoryStorage)
    assert repr(appusers_sync_app).startswith("<appusers.sync.App") and "open" in repr(appusers_sync_app)


def test_closed_app_refuses_calls(appusers_server_thread: ServerThread) -> None:
    app = App(appusers_server_thread.app_id, base_url=appusers_server_thread.url, storage=MemoryStorage())
    user = app.log_in(Credentials.anonymous())
    thread = app.loop_thread.thread
    app.close()
    app.close()  # idempotent
    assert app.closed and not thread.is_alive() and "closed" in repr(app)
    with pytest.raises(AppClosedError):
        user.functions.sum(1)
    with pytest.raises(AppClosedError):
        app.log_in(Credentials.anonymous())
    with pytest.raises(AppClosedError):
        _ = app.current_user
    with pytest.raises(AppClosedError):
        user.state_changes.subscribe(print)
