"""MemoryStorage against the storage contract, plus what is particular to it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appusers.adapters import MemoryStorage
from appusers.adapters.storage_contract import StorageContract
from appusers.storage import Storage


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def open_storage(self) -> Callable[[], Storage]:
        backing: dict[str, str] = {}
        return lambda: MemoryStorage(backing)


async def test_instances_without_a_shared_dict_are_independent() -> None:
    first, second = MemoryStorage(), MemoryStorage()
    await first.set("k", "v")
    assert await second.get("k") is None


async def test_transact_is_a_read_modify_write() -> None:
    storage = MemoryStorage()
    await storage.set("n", "0")
    for _ in range(10):
        await storage.transact(lambda cur: {"n": str(int(cur["n"]) + 1), "seen": cur["n"]})
    assert await storage.items("") == {"n": "10", "seen": "9"}


def test_repr_counts_keys_only() -> None:
    storage = MemoryStorage({"app(a):user(1):accessToken": "secret-token-value"})
    assert repr(storage) == "MemoryStorage(keys=1)"
