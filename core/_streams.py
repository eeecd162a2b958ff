"""Subjects that a misbehaving subscriber cannot break.

reactivex's ``Subject.on_next`` lets an observer's exception escape into the
publisher, which would skip the remaining observers and surface in the middle of
an SDK operation. Here each observer is called on its own; an exception is
logged and swallowed, so a transition always completes and every subscriber
still hears about it. Observers run synchronously on the publishing thread (the
App's loop thread); bindings move delivery to their host thread.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.subject import BehaviorSubject, Subject

__all__ = ["SafeBehaviorSubject", "SafeSubject", "hide", "listener"]

_T = TypeVar("_T")
_log = logging.getLogger("appusers.streams")


def _deliver(observers: list[abc.ObserverBase[Any]], value: Any) -> None:
    for observer in observers:
        try:
            observer.on_next(value)
        except Exception:
            # The type only: a subscriber's message might quote event data.
            _log.exception("a subscriber raised while handling %s", type(value).__name__)


class SafeSubject(Subject[_T], Generic[_T]):
    """A ``Subject`` whose observers are isolated from each other's exceptions."""

    def _on_next_core(self, value: _T) -> None:
        with self.lock:
            observers = self.observers.copy()
        _deliver(observers, value)


class SafeBehaviorSubject(BehaviorSubject[_T], Generic[_T]):
    """A ``BehaviorSubject`` (replays the latest value) with isolated observers."""

    def _on_next_core(self, value: _T) -> None:
        with self.lock:
            observers = self.observers.copy()
            self.value = value
        _deliver(observers, value)


def hide(subject: Subject[_T]) -> Observable[_T]:
    """The subject seen as a plain Observable: subscribers cannot push into it."""

    def subscribe(
        observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return subject.subscribe(observer, scheduler=scheduler)

    return Observable(subscribe)


def listener(callback: Callable[..., Any]) -> Callable[[Any], Any]:
    """``callback`` as an observer of events: called with the event if it takes one
    argument, with none if it takes none (the Node SDK's listener shape).

    Decided once, here, so a listener of the wrong shape fails when it is added, with a
    ``TypeError`` naming it, rather than on every event inside the SDK (where the error
    could only be logged).
    """
    if not callable(callback):
        raise TypeError(f"a listener must be callable, not {type(callback).__name__}")
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return callback  # no introspectable signature (some builtins): called with the event
    for arguments in ((None,), ()):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        if arguments:
            return callback

        def without_event(_event: Any) -> Any:
            return callback()

        return without_event
    raise TypeError(
        f"a listener takes one argument (the event) or none; {_name(callback)} has the "
        f"signature {signature}"
    )


def _name(callback: Callable[..., Any]) -> str:
    return getattr(callback, "__qualname__", None) or type(callback).__name__
