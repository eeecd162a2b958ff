"""The contract every :class:`~appusers.storage.Storage` must meet, as a pytest test base class.

A storage adapter proves itself by subclassing :class:`StorageContract` in its test
module and providing the ``open_storage`` fixture; every test below is inherited::

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def open_storage(self, tmp_path):
            return lambda: MyStorage(tmp_path / "users")

Imports pytest: only test code imports this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from appusers.errors import InvalidArgumentError
from appusers.storage import Storage

__all__ = ["StorageContract"]

# Stands in for a token: it must never show up outside the storage itself.
CANARY = "eyJcanary.c2VjcmV0LXRva2Vu.sig-7f3a9c"

UNICODE_SAMPLES = {
    "app(x):user(é):name": "Zoë Saldaña — ünïcödé",
    "app(x):user(日本):profile": '{"name": "山田太郎", "note": "テスト"}',
    "app(x):user(🙂):emoji": "🙂🚀 non-BMP 𝄞 and RTL عربى",
    "app(x):user(q):escapes": 'quotes " and \\ backslashes \\" and\nnew\tlines\r\n',
}


class StorageContract:
    """Behaviour shared by every storage; subclasses supply ``open_storage``."""

    @pytest.fixture
    def open_storage(self) -> Callable[[], Storage]:
        """Override: a function whose every call opens a NEW storage instance on the
        SAME backing store (one file, one dict...), which starts empty for each test."""
        raise NotImplementedError("a StorageContract subclass must provide the open_storage fixture")

    @pytest.fixture
    def storage(self, open_storage: Callable[[], Storage]) -> Storage:
        return open_storage()

    async def test_is_a_storage(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)

    async def test_absent_key_is_none(self, storage: Storage) -> None:
        assert await storage.get("missing") is None
        assert await storage.items("") == {}

    async def test_round_trip(self, storage: Storage) -> None:
        await storage.set("app(a):user(1):refreshToken", "value-1")
        assert await storage.get("app(a):user(1):refreshToken") == "value-1"

    async def test_overwrite(self, storage: Storage) -> None:
        await storage.set("k", "old")
        await storage.set("k", "new")
        assert await storage.get("k") == "new"
        assert await storage.items("") == {"k": "new"}

    async def test_empty_string_is_a_value(self, storage: Storage) -> None:
        await storage.set("k", "")
        assert await storage.get("k") == ""
        assert await storage.items("") == {"k": ""}

    async def test_remove(self, storage: Storage) -> None:
        await storage.set("k", "v")
        await storage.set("other", "w")
        await storage.remove("k")
        assert await storage.get("k") is None
        assert await storage.items("") == {"other": "w"}

    async def test_remove_absent_is_fine(self, storage: Storage) -> None:
        await storage.remove("never-set")
        await storage.update({"never-set-either": None})
        assert await storage.items("") == {}

    async def test_update_sets_and_removes_together(self, storage: Storage) -> None:
        await storage.update({"a": "1", "b": "2", "c": "3"})
        await storage.update({"a": None, "b": "two", "d": "4"})
        assert await storage.items("") == {"b": "two", "c": "3", "d": "4"}

    async def test_update_with_no_changes(self, storage: Storage) -> None:
        await storage.set("a", "1")
        await storage.update({})
        assert await storage.items("") == {"a": "1"}

    async def test_update_copies_the_changes(self, storage: Storage) -> None:
        changes: dict[str, str | None] = {"a": "1"}
        await storage.update(changes)
        changes["a"] = "mutated"
        changes["b"] = "added"
        assert await storage.items("") == {"a": "1"}

    async def test_items_by_prefix(self, storage: Storage) -> None:
        await storage.update(
            {
                "app(a):user(1):accessToken": "a1",
                "app(a):user(2):accessToken": "a2",
                "app(a):userIds": "[]",
                "app(ab):user(1):accessToken": "ab1",
                "app(b):user(1):accessToken": "b1",
            }
        )
        assert await storage.items("app(a):user(") == {
            "app(a):user(1):accessToken": "a1",
            "app(a):user(2):accessToken": "a2",
        }
        assert await storage.items("app(a)") == {
            "app(a):user(1):accessToken": "a1",
            "app(a):user(2):accessToken": "a2",
            "app(a):userIds": "[]",
        }
        assert await storage.items("app(c)") == {}
        assert len(await storage.items("")) == 5

    async def test_items_result_is_a_copy(self, storage: Storage) -> None:
        await storage.set("a", "1")
        found = await storage.items("")
        if isinstance(found, dict):
            found["a"] = "mutated"
            found["b"] = "added"
        assert await storage.items("") == {"a": "1"}

    async def test_unicode_keys_and_values(
        self, storage: Storage, open_storage: Callable[[], Storage]
    ) -> None:
        await storage.update(dict(UNICODE_SAMPLES))
        assert await storage.items("") == UNICODE_SAMPLES
        assert await open_storage().items("") == UNICODE_SAMPLES

    async def test_large_value(self, storage: Storage, open_storage: Callable[[], Storage]) -> None:
        big = ("0123456789abcdef" * 65536)[:-1] + "é"  # 1 MiB of characters
        assert len(big) == 1 << 20
        await storage.set("big", big)
        await storage.set("small", "s")
        assert await storage.get("big") == big
        assert await open_storage().get("big") == big

    async def test_concurrent_writers_in_one_loop_lose_nothing(self, storage: Storage) -> None:
        async def set_one(i: int) -> None:
            await storage.set(f"set:{i}", f"v{i}")

        async def update_some(i: int) -> None:
            await storage.update({f"upd:{i}:a": f"a{i}", f"upd:{i}:b": f"b{i}", f"old:{i}": None})

        await storage.update({f"old:{i}": "to be removed" for i in range(60, 80)})
        await asyncio.gather(*(set_one(i) for i in range(60)), *(update_some(i) for i in range(60, 80)))
        assert await storage.items("") == {
            **{f"set:{i}": f"v{i}" for i in range(60)},
            **{f"upd:{i}:a": f"a{i}" for i in range(60, 80)},
            **{f"upd:{i}:b": f"b{i}" for i in range(60, 80)},
        }

    async def test_concurrent_sets_of_one_key_leave_one_whole_value(self, storage: Storage) -> None:
        values = [f"{i}:" + chr(ord("a") + i) * 5000 for i in range(20)]
        await asyncio.gather(*(storage.set("k", v) for v in values))
        assert await storage.get("k") in values

    async def test_a_new_instance_sees_the_data(self, open_storage: Callable[[], Storage]) -> None:
        first = open_storage()
        await first.update({"a": "1", "b": "2", "gone": "x"})
        await first.remove("gone")
        second = open_storage()
        assert await second.items("") == {"a": "1", "b": "2"}

    async def test_live_instances_see_each_others_writes(self, open_storage: Callable[[], Storage]) -> None:
        first, second = open_storage(), open_storage()
        await first.set("a", "1")
        assert await second.get("a") == "1"  # also primes any cache in second
        await first.set("a", "2")
        await first.set("b", "3")
        assert await second.items("") == {"a": "2", "b": "3"}
        await second.remove("a")
        assert await first.get("a") is None

    async def test_drain_issues_is_empty_on_a_healthy_store(
        self, storage: Storage, open_storage: Callable[[], Storage]
    ) -> None:
        await storage.update({"a": "1", "b": "2"})
        await storage.remove("a")
        await storage.items("")
        assert storage.drain_issues() == []
        again = open_storage()
        assert await again.get("b") == "2"
        assert again.drain_issues() == []

    async def test_only_strings_are_accepted(self, storage: Storage) -> None:
        with pytest.raises(InvalidArgumentError) as caught:
            await storage.set("k", b"bytes-" + CANARY.encode())  # type: ignore[arg-type]
        assert CANARY not in str(caught.value)
        with pytest.raises(InvalidArgumentError):
            await storage.set(1, "v")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            await storage.update({"ok": "v", "bad": 1})  # type: ignore[dict-item]
        assert await storage.items("") == {}

    async def test_values_never_in_repr_or_logs(
        self, storage: Storage, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        await storage.set("app(a):user(1):accessToken", CANARY)
        await storage.update({"app(a):user(1):refreshToken": CANARY + "-refresh"})
        await storage.items("")
        await storage.get("app(a):user(1):accessToken")
        await storage.remove("app(a):user(1):accessToken")
        assert CANARY not in repr(storage)
        assert CANARY not in str(storage)
        assert CANARY not in caplog.text
