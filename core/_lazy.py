"""Standard-library modules imported on first use rather than by ``import appusers``.

``asyncio`` alone pulls in ssl, subprocess, concurrent.futures, logging and inspect: about
half of what ``import appusers`` used to cost, spent before a program has even built its
App; ``logging`` (with traceback, string and weakref) was another tenth. A module that
needs one of them writes::

    if TYPE_CHECKING:
        import asyncio
    else:
        asyncio = lazy_module("asyncio", globals())

and ``_log = lazy_logger("appusers", globals())`` for its logger. Type checkers see the
real module. At run time the first attribute read imports it and rebinds the module's
global to the real object, so every later ``asyncio.X`` or ``_log.X`` is a plain attribute
lookup, as if it had been made at the top.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

__all__ = ["lazy_logger", "lazy_module"]


class _StandIn:
    """Made by ``load`` on first attribute read, then bound to ``namespace[alias]``."""

    __slots__ = ("_alias", "_load", "_namespace")

    def __init__(self, load: Callable[[], Any], namespace: dict[str, Any], alias: str) -> None:
        self._load = load
        self._namespace = namespace
        self._alias = alias

    def __getattr__(self, attribute: str) -> Any:
        real = self._load()
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = real
        return getattr(real, attribute)

    def __repr__(self) -> str:
        return f"<{self._alias}, made on first use>"


def lazy_module(name: str, namespace: dict[str, Any]) -> Any:
    """A stand-in for the top-level module ``name``, bound to the global of the same name
    in ``namespace`` (the caller's ``globals()``), that imports it on first attribute read."""
    if "." in name:
        raise ValueError("only a top-level module can stand in for its own global name")
    return sys.modules.get(name) or _StandIn(lambda: import_module(name), namespace, name)


def lazy_logger(name: str, namespace: dict[str, Any], alias: str = "_log") -> logging.Logger:
    """``logging.getLogger(name)``, bound to ``namespace[alias]``, made on first attribute read.
    The logger is the same object ``logging.getLogger(name)`` gives anywhere else, so
    handlers and levels set on it before or after apply alike."""
    def load() -> logging.Logger:
        import logging

        return logging.getLogger(name)

    if "logging" in sys.modules:
        return load()
    stand_in: logging.Logger = _StandIn(load, namespace, alias)  # type: ignore[assignment]
    return stand_in
