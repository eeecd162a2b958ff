"""Standard-library modules imported on first use rather than by ``import appusers``.

``asyncio`` alone pulls in ssl, subprocess, concurrent.futures, logging and inspect: about
half of what ``import appusers`` used to cost, spent before a program has even built its
App. A module that needs one of these writes::

    if TYPE_CHECKING:
        import asyncio
    else:
        asyncio = lazy_module("asyncio", globals())

Type checkers see the real module. At run time the first attribute read imports it and
rebinds the module's global to the real module, so every later ``asyncio.X`` is a plain
attribute lookup, as if it had been imported at the top.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    __slots__ = ("_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any]) -> None:
        self._name = name
        self._namespace = namespace

    def __getattr__(self, attribute: str) -> Any:
        module = sys.modules.get(self._name) or import_module(self._name)
        if self._namespace.get(self._name) is self:
            self._namespace[self._name] = module
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str, namespace: dict[str, Any]) -> Any:
    """A stand-in for the top-level module ``name``, bound to the global of the same name
    in ``namespace`` (the caller's ``globals()``), that imports it on first attribute read."""
    if "." in name:
        raise ValueError("only a top-level module can stand in for its own global name")
    return sys.modules.get(name) or _LazyModule(name, namespace)
