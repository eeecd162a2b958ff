"""Changes made on another thread reach asyncio code through AsyncioScheduler (or aiter_stream)."""

import asyncio
import threading

from reactivex import operators as ops

from appusers import App, Credentials, UserState
from appusers.bindings.asyncio import AsyncioScheduler


async def main(base_url: str, app_id: str) -> None:
    loop_thread = threading.get_ident()
    delivered_on: list[int] = []
    seen = asyncio.Event()

    def on_state(state: UserState) -> None:  # runs on this loop, whichever thread published
        delivered_on.append(threading.get_ident())
        if state is UserState.LOGGED_OUT:
            seen.set()

    def worker(app: App) -> None:
        # A second event loop in a worker thread drives the App, e.g. a sync program's helper.
        async def run() -> None:
            user = await app.log_in(Credentials.function({"username": "ana"}))
            user.state_changes.pipe(ops.observe_on(scheduler)).subscribe(on_state)
            await user.log_out()
            await app.aclose()

        asyncio.run(run())

    scheduler = AsyncioScheduler()  # the running loop: this one
    app = App(app_id, base_url=base_url)
    thread = threading.Thread(target=worker, args=(app,))
    thread.start()
    await asyncio.wait_for(seen.wait(), timeout=10)
    await asyncio.to_thread(thread.join)
    assert delivered_on and set(delivered_on) == {loop_thread}
