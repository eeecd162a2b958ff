"""Authentication triggers: run functions after users log in, are created or are deleted.

Each matching trigger runs its function as system (no ``context.user``) in its own task,
after the event and without holding up the reply: a log-in succeeds whatever the trigger
does. A failing or timed-out trigger is logged with the trigger's name and the error's
type only (its message may quote user data or secrets a function handled).

The function receives ``authEvent = {"operationType", "providers", "user", "time"}``
(App Services' authentication event): ``user`` as App Services describes it (``id``, ``type``, ``data``,
``identities`` of ``{id, provider_type}``), ``time`` a timezone-aware UTC datetime. A
``DELETE`` lists every provider the user had linked.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._errors import ApiError
from ._function_settings import AuthTrigger
from ._functions import FunctionContext
from ._store import UserRecord

__all__ = ["AuthTriggers", "auth_event_user"]

log = logging.getLogger("appusers.server")


def auth_event_user(user: UserRecord) -> dict[str, Any]:
    """``authEvent.user``: the user as App Services hands it to triggers."""
    return {
        "id": user.id,
        "type": user.type,
        "data": dict(user.data),
        "identities": [{"id": i.id, "provider_type": i.provider_type} for i in user.identities],
    }


class AuthTriggers:
    """The enabled authentication triggers and their running tasks."""

    def __init__(self, triggers: Iterable[AuthTrigger], context: Callable[[], FunctionContext]):
        self._triggers = tuple(t for t in triggers if not t.disabled)
        self._context = context
        self._tasks: set[asyncio.Task[None]] = set()

    def fire(self, operation: str, user: UserRecord, providers: Sequence[str]) -> int:
        """Start every trigger matching ``operation`` through ``providers``; returns how many."""
        chosen = tuple(dict.fromkeys(providers))
        matching = [t for t in self._triggers if t.matches(operation, chosen)]
        if not matching:
            return 0
        event = {
            "operationType": operation,
            "providers": list(chosen),
            "user": auth_event_user(user),
            "time": datetime.datetime.now(datetime.UTC),
        }
        for trigger in matching:
            task = asyncio.get_running_loop().create_task(self._run(trigger, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(matching)

    async def _run(self, trigger: AuthTrigger, event: dict[str, Any]) -> None:
        context = self._context()
        try:
            await context.registry.invoke(trigger.function, context, [event])
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            log.warning("authentication trigger %r failed: %s", trigger.name, exc.code)
        except Exception as exc:  # never let a trigger take anything else down
            log.warning("authentication trigger %r failed: %s", trigger.name, type(exc).__name__)

    async def idle(self) -> None:
        """Wait until every trigger started so far has finished."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self, timeout: float = 5.0) -> None:
        """Give running triggers ``timeout`` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
