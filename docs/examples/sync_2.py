"""A notebook cell runs inside the kernel's event loop: allow_running_loop=True lets it block."""

import asyncio

import pytest

from appusers import Credentials
from appusers.adapters import MemoryStorage
from appusers.sync import App, BlockingCallError


def notebook(base_url: str, app_id: str) -> None:
    # Cell 1: one App for the whole notebook (close it in a last cell, or let it go at exit).
    app = App(app_id, base_url=base_url, storage=MemoryStorage(), allow_running_loop=True)

    # Cell 2
    user = app.log_in(Credentials.anonymous())
    assert user.functions.sum(1, 2) == 3

    # Cell 3
    app.close()


async def main(base_url: str, app_id: str) -> None:
    async def kernel(cell: object) -> None:  # plays Jupyter: a running loop around each cell
        assert callable(cell)
        cell(base_url, app_id)

    # Without allow_running_loop the first blocking call says what to do.
    def plain(base_url: str, app_id: str) -> None:
        App(app_id, base_url=base_url, storage=MemoryStorage())

    with pytest.raises(BlockingCallError, match="allow_running_loop=True"):
        await asyncio.to_thread(asyncio.run, kernel(plain))
    await asyncio.to_thread(asyncio.run, kernel(notebook))
