"""Tie subscriptions to the lifetime of a ``QObject``.

A widget that goes away must stop receiving: its subscriptions are disposed when it
emits ``destroyed``, and a value already queued for it is dropped if the C++ object
is gone (``shiboken6.isValid``). Bound-method callbacks are held weakly, so a
subscription on a long-lived App never keeps a widget's Python wrapper alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QObject
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable

from ._scheduler import GuiScheduler

__all__ = ["bind", "dispose_with"]

_T = TypeVar("_T")


def dispose_with(owner: QObject, *disposables: abc.DisposableBase) -> CompositeDisposable:
    """Dispose ``disposables`` when ``owner`` is destroyed; returns them as one disposable.

    Disposing the result earlier is fine (disposal is idempotent).
    """
    group = CompositeDisposable(*disposables)
    # The slot captures the group, not the owner: nothing here keeps the owner alive.
    owner.destroyed.connect(lambda *_: group.dispose())
    return group


def _weak_callable(fn: Callable[[_T], Any]) -> Callable[[], Callable[[_T], Any] | None]:
    if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
        method = weakref.WeakMethod(fn)
        return method
    return lambda: fn


def bind(
    owner: QObject,
    source: Observable[_T],
    on_next: Callable[[_T], Any],
    *,
    scheduler: GuiScheduler | None = None,
) -> CompositeDisposable:
    """Call ``on_next(value)`` on the GUI thread for each value of ``source``, while ``owner`` lives.

    ::

        bind(label, user.state_changes, lambda s: label.setText(s.value))

    ``source`` may emit on any thread. The subscription is disposed when ``owner``
    is destroyed (or when you dispose the returned object); values still queued
    then are dropped.
    """
    gui = scheduler or GuiScheduler.instance()
    target = _weak_callable(on_next)
    owner_ref = weakref.ref(owner)

    def deliver(value: _T) -> None:
        alive = owner_ref()
        callback = target()
        if alive is None or callback is None or not shiboken6.isValid(alive):
            return
        callback(value)

    subscription = source.pipe(ops.observe_on(gui)).subscribe(on_next=deliver)
    return dispose_with(owner, subscription)
