"""Thread rules: observers run on the thread that publishes; move work to a loop with the asyncio binding."""

import threading

from appusers import App, Credentials, UserState
from appusers.bindings.asyncio import aiter_stream


async def main(base_url: str, app_id: str) -> None:
    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.function({"username": "ana"}))

        # A plain subscriber runs synchronously, on the thread that made the change
        # (here the loop's thread): keep it short and never block in it.
        threads: list[str] = []
        user.state_changes.subscribe(lambda state: threads.append(threading.current_thread().name))
        assert threads == [threading.current_thread().name]

        # `async for` delivers on this loop, whichever thread publishes. The iterator
        # subscribes when it is created, so nothing published after this line is missed.
        states = aiter_stream(user.state_changes)
        await user.log_out()
        seen = []
        async with states:  # unsubscribes on exit
            async for state in states:
                seen.append(state)
                if state is UserState.LOGGED_OUT:
                    break
        assert seen == [UserState.LOGGED_IN, UserState.LOGGED_OUT]

        # Or simply wait for a state.
        await user.wait_for(UserState.LOGGED_OUT, timeout=5)
