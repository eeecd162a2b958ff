"""EncryptedStorage: the contract over real files, a real file-based keyring, wrong and missing keys (S3)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest

from appusers import App, Credentials, StorageRecovered
from appusers.adapters import EncryptedStorage, FileStorage, MemoryStorage, SQLiteStorage
from appusers.adapters.storage_contract import CANARY, StorageContract
from appusers.errors import InvalidArgumentError, StorageError, StorageKeyUnavailableError
from appusers.server import LocalServer
from appusers.storage import Storage


class FileKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend keeping its entries in a JSON file, as keyrings.alt's do."""

    priority = 0.1  # never picked by keyring's own auto-detection ahead of a real one

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _entries(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._entries()
        entries[f"{service}/{username}"] = password
        self.path.write_text(json.dumps(entries))
        os.chmod(self.path, 0o600)

    def delete_password(self, service: str, username: str) -> None:
        entries = self._entries()
        if entries.pop(f"{service}/{username}", None) is None:
            raise keyring.errors.PasswordDeleteError("no such entry")
        self.path.write_text(json.dumps(entries))


class LockedKeyring(keyring.backend.KeyringBackend):
    """A keyring that is there but refuses (a locked or unreachable Secret Service)."""

    priority = 0.1

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringError("the collection is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the collection is locked")


KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


@pytest.fixture
def keyring_file(tmp_path: Path) -> FileKeyring:
    return FileKeyring(tmp_path / "keyring.json")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "users.json"


class TestEncryptedFileStorageContract(StorageContract):
    @pytest.fixture
    def open_storage(self, store_path: Path, keyring_file: FileKeyring) -> Callable[[], Storage]:
        return lambda: EncryptedStorage(FileStorage(store_path), keyring_backend=keyring_file)


class TestEncryptedSQLiteStorageContract(StorageContract):
    @pytest.fixture
    def open_storage(self, tmp_path: Path) -> Callable[[], Storage]:
        return lambda: EncryptedStorage(SQLiteStorage(tmp_path / "db" / "users.sqlite"), key=KEY_A)


def raw_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


# -- tokens on disk -----------------------------------------------------------------------


async def test_tokens_are_never_on_disk_in_plain_text(
    server: LocalServer, store_path: Path, keyring_file: FileKeyring
) -> None:
    def storage() -> EncryptedStorage:
        return EncryptedStorage(FileStorage(store_path), keyring_backend=keyring_file)

    async with App(server.app_id, base_url=server.url, storage=storage()) as app:
        user = await app.log_in(Credentials.anonymous())
        tokens = [user.access_token, user.refresh_token]
        await user.refresh_custom_data()
    assert all(tokens)
    on_disk = raw_bytes(store_path.parent)
    assert user.id.encode() in on_disk  # keys stay readable: the grep below looks in the right files
    for token in tokens:
        assert token is not None
        assert token.encode() not in on_disk
        assert token.split(".")[1].encode() not in on_disk  # not even the JWT's payload
    assert keyring_file.get_password("appusers", "session-key") is not None
    async with App(server.app_id, base_url=server.url, storage=storage()) as again:
        restored = again.all_users[user.id]
        assert restored.refresh_token == tokens[1]
        assert await restored.functions.sum(2, 3) == 5


async def test_an_unencrypted_store_is_sealed_in_place(store_path: Path) -> None:
    await FileStorage(store_path).update({"app(a):user(1):refreshToken": CANARY, "other": "x"})
    storage = EncryptedStorage(FileStorage(store_path), key=KEY_A)
    assert await storage.items("") == {"app(a):user(1):refreshToken": CANARY, "other": "x"}
    assert CANARY.encode() not in store_path.read_bytes()
    assert await EncryptedStorage(FileStorage(store_path), key=KEY_A).get("other") == "x"


# -- keys: from the keyring, from the app, none ------------------------------------------------


async def test_no_keyring_and_no_key_is_a_typed_error_and_nothing_is_written(store_path: Path) -> None:
    # The suite's keyring is keyring.backends.fail.Keyring (tests/conftest.py): as on a server.
    assert "fail" in type(keyring.get_keyring()).__module__
    storage = EncryptedStorage(FileStorage(store_path))
    with pytest.raises(StorageKeyUnavailableError) as caught:
        await storage.set("k", CANARY)
    assert isinstance(caught.value, StorageError)
    assert "not written unencrypted" in str(caught.value)
    assert not store_path.exists()
    with pytest.raises(StorageKeyUnavailableError):
        await storage.items("")


async def test_a_locked_keyring_is_a_typed_error(store_path: Path) -> None:
    storage = EncryptedStorage(FileStorage(store_path), keyring_backend=LockedKeyring())
    with pytest.raises(StorageKeyUnavailableError):
        await storage.get("k")
    assert not store_path.exists()


async def test_the_default_keyring_is_used_when_none_is_given(
    store_path: Path, keyring_file: FileKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring_file)
    await EncryptedStorage(FileStorage(store_path), key_name="my-app").set("k", "v")
    assert keyring_file.get_password("appusers", "my-app") is not None
    assert await EncryptedStorage(FileStorage(store_path), key_name="my-app").get("k") == "v"


async def test_an_app_key_needs_no_keyring(store_path: Path) -> None:
    await EncryptedStorage(FileStorage(store_path), key=KEY_A).set("k", CANARY)
    assert await EncryptedStorage(FileStorage(store_path), key=KEY_A).get("k") == CANARY


@pytest.mark.parametrize("key", [b"", b"short", bytes(31), bytes(33), "x" * 32, bytearray(32)], ids=repr)
def test_bad_keys_are_refused(key: object) -> None:
    with pytest.raises(InvalidArgumentError):
        EncryptedStorage(MemoryStorage(), key=key)  # type: ignore[arg-type]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        EncryptedStorage("not a storage")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        EncryptedStorage(MemoryStorage(), key_name="")


def test_repr_never_shows_the_key() -> None:
    storage = EncryptedStorage(MemoryStorage(), key=KEY_A)
    assert KEY_A.hex() not in repr(storage) and repr(KEY_A) not in repr(storage)
    assert repr(storage).startswith("EncryptedStorage(MemoryStorage(")


async def test_reserved_keys_cannot_be_written() -> None:
    storage = EncryptedStorage(MemoryStorage(), key=KEY_A)
    with pytest.raises(InvalidArgumentError):
        await storage.set("appusers-encrypted:check", "x")
    with pytest.raises(InvalidArgumentError):
        await storage.update({"appusers-quarantine:1:k": "x"})


# -- wrong or missing key: quarantine, never a crash ----------------------------------------------


async def test_a_wrong_key_quarantines_the_store(store_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await EncryptedStorage(FileStorage(store_path), key=KEY_A).update({"a": CANARY, "b": "2"})
    caplog.set_level(logging.DEBUG)
    storage = EncryptedStorage(FileStorage(store_path), key=KEY_B)
    assert await storage.items("") == {}
    [issue] = storage.drain_issues()
    assert issue.kind == "quarantined" and "another key" in issue.detail
    assert CANARY not in caplog.text and CANARY not in issue.detail
    await storage.set("c", "3")
    assert await EncryptedStorage(FileStorage(store_path), key=KEY_B).items("") == {"c": "3"}
    # The sealed values are kept (still sealed) for whoever has the old key.
    kept = await FileStorage(store_path).items("appusers-quarantine:")
    assert len(kept) == 3 and all(v.startswith("e1:") for v in kept.values())


async def test_a_key_lost_from_the_keyring_quarantines_and_starts_over(
    server: LocalServer, store_path: Path, keyring_file: FileKeyring
) -> None:
    def app() -> App:
        storage = EncryptedStorage(FileStorage(store_path), keyring_backend=keyring_file)
        return App(server.app_id, base_url=server.url, storage=storage)

    async with app() as first:
        await first.log_in(Credentials.anonymous())
    keyring_file.delete_password("appusers", "session-key")  # a new machine, a wiped keyring...

    second = app()
    seen: list[object] = []
    second.events.subscribe(seen.append)
    async with second:  # never a crash: the users are gone, and an event says why
        assert len(second.all_users) == 0
        recovered = [e for e in seen if isinstance(e, StorageRecovered)]
        assert [e.issue.kind for e in recovered] == ["quarantined"]
        assert "not in the keyring" in recovered[0].issue.detail
        user = await second.log_in(Credentials.anonymous())
    async with app() as third:
        assert list(third.all_users) == [user.id]


async def test_a_damaged_or_moved_value_is_left_out_and_reported(store_path: Path) -> None:
    storage = EncryptedStorage(FileStorage(store_path), key=KEY_A)
    await storage.update({"a": "1", "b": "2", "c": "3"})
    raw = await FileStorage(store_path).items("")
    flipped = raw["a"][:-3] + ("A" if raw["a"][-3] != "A" else "B") + raw["a"][-2:]
    # "b" gets "c"'s sealed value: the key is bound in, so it must not open as "3".
    await FileStorage(store_path).update({"a": flipped, "b": raw["c"], "c": "e1:not-base64!"})
    again = EncryptedStorage(FileStorage(store_path), key=KEY_A)
    assert await again.items("") == {}
    assert [i.kind for i in again.drain_issues()] == ["record-dropped"] * 3
    assert await again.get("b") is None


async def test_a_corrupt_inner_file_is_quarantined_by_the_inner_storage(store_path: Path) -> None:
    await EncryptedStorage(FileStorage(store_path), key=KEY_A).set("a", "1")
    store_path.write_bytes(b"garbage")
    storage = EncryptedStorage(FileStorage(store_path), key=KEY_A)
    assert await storage.items("") == {}
    assert [i.kind for i in storage.drain_issues()] == ["quarantined"]
    await storage.set("b", "2")
    assert await EncryptedStorage(FileStorage(store_path), key=KEY_A).items("") == {"b": "2"}
