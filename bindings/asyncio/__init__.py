"""appusers on asyncio: ``async for`` over any user or app stream, from any thread.

::

    from appusers.bindings.asyncio import aiter_stream

    async for state in aiter_stream(user.state_changes):
        print(state)

:class:`AsyncioScheduler` is the reactivex scheduler behind it: pass it to
``observe_on`` to run any subscriber on the loop whatever thread emits.
``await user.wait_for(UserState.LOGGED_OUT)`` waits for a state.
"""

from __future__ import annotations

from appusers.bindings.asyncio._iterate import StreamIterator, aiter_stream
from appusers.bindings.asyncio._scheduler import AsyncioScheduler

__all__ = ["AsyncioScheduler", "StreamIterator", "aiter_stream"]
