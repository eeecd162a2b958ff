"""``CoreLoop``: an asyncio event loop on a thread of its own, where the App runs.

Why a core thread rather than asyncio on the Qt event loop: the App does real work
between awaits (restoring 100,000 users from storage, JSON and JWT parsing, storage
writes), and on the GUI thread every such slice would freeze the window. On its own
thread the core can take as long as it likes; the GUI thread only ever posts work to
it and receives results and stream values back through :class:`GuiScheduler`.
It also keeps the default aiohttp transport (which needs a plain asyncio loop) usable.
The loop thread itself is the core's :class:`appusers._loop_thread.LoopThread`, which
the blocking facade ``appusers.sync`` runs on too. See docs/bindings-qt.md.
"""

from __future__ import annotations

from appusers._loop_thread import LoopThread

__all__ = ["CoreLoop"]


class CoreLoop(LoopThread):
    """An asyncio loop running on a daemon thread, started at construction.

    ::

        core = CoreLoop()
        future = core.submit(app.open())   # a concurrent.futures.Future
        ...
        core.stop(app.aclose())            # after QApplication.exec() returns

    Everything touching an App should run on this loop: submit coroutines with
    :meth:`submit`, plain callables with :meth:`call_soon`. Call :meth:`stop` once the
    GUI is finished, after ``QApplication.exec()`` returns, never from a slot (it blocks).
    """
