"""User functions: a Python module whose public callables can be called over HTTP.

Every public callable *defined in* the module (not imported into it) is a
function; it is called as ``fn(context, *args)`` and may be sync or async. Sync
functions run on the event loop, so they should be quick; anything touching the
document store is async and must be awaited from an async function.

``context`` is a :class:`FunctionContext`: ``context.user`` (None in login-time
hooks such as custom-function authentication or confirmation functions),
``context.services.get("mongodb-atlas").db(name).collection(name)``,
``context.app_id`` and ``context.functions.execute(name, *args)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._config import ConfigError
from ._errors import ApiError

__all__ = ["FunctionContext", "FunctionRegistry", "FunctionUser", "MongoDatabase", "MongoService", "Services"]

log = logging.getLogger("appusers.server")


@attrs.frozen
class FunctionUser:
    """The calling user as functions see it."""

    id: str
    type: str
    identities: tuple[Mapping[str, Any], ...]
    data: Mapping[str, str]
    custom_data: Mapping[str, Any]


class MongoDatabase:
    """``service.db(name)``: hands out document-store collections."""

    def __init__(self, store: Any, name: str):
        self._store = store
        self.name = name

    def collection(self, name: str) -> Any:
        """The ``DocumentCollection`` ``name`` of this database."""
        return self._store.collection(self.name, name)

    __getitem__ = collection


class MongoService:
    """A MongoDB service as functions see it."""

    def __init__(self, store: Any, name: str):
        self._store = store
        self.name = name

    def db(self, name: str) -> MongoDatabase:
        """The database ``name``."""
        return MongoDatabase(self._store, name)


class Services:
    """``context.services``: the configured MongoDB services by name."""

    def __init__(self, store: Any, names: Sequence[str]):
        self._services = {n: MongoService(store, n) for n in names}

    def get(self, name: str) -> MongoService:
        """The service ``name``; KeyError if it is not configured."""
        try:
            return self._services[name]
        except KeyError:
            raise KeyError(f"no service named {name!r}") from None


class _Functions:
    """``context.functions``: call another function with the same context."""

    def __init__(self, context: FunctionContext):
        self._context = context

    async def execute(self, name: str, *args: Any) -> Any:
        """Call function ``name`` with ``args``."""
        return await self._context.registry.invoke(name, self._context, list(args))


@attrs.define
class FunctionContext:
    """What a function receives as its first argument."""

    app_id: str
    services: Services
    registry: FunctionRegistry = attrs.field(repr=False)
    user: FunctionUser | None = None

    @property
    def functions(self) -> _Functions:
        """Call other functions: ``await context.functions.execute("name", ...)``."""
        return _Functions(self)


class FunctionRegistry:
    """The loaded functions module."""

    def __init__(self, module_path: Path | None, timeout: float = 60.0):
        self._functions: dict[str, Callable[..., Any]] = {}
        self._timeout = timeout
        if module_path is not None:
            self._functions = _load(module_path)

    def __contains__(self, name: str) -> bool:
        return name in self._functions

    def names(self) -> list[str]:
        """The callable function names."""
        return sorted(self._functions)

    async def invoke(self, name: str, context: FunctionContext, args: Sequence[Any]) -> Any:
        """Run function ``name``; FunctionNotFound / FunctionExecutionError as ApiError."""
        fn = self._functions.get(name)
        if fn is None:
            raise ApiError(404, "FunctionNotFound", f"function not found: {name!r}")
        try:
            result = fn(context, *args)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self._timeout)
        except ApiError:
            raise
        except TimeoutError:
            raise ApiError(400, "ExecutionTimeLimitExceeded", f"function {name!r} timed out") from None
        except Exception as exc:
            # The function's own message is the useful part; no traceback leaves the server.
            message = str(exc) or type(exc).__name__
            log.info("function %r raised %s", name, type(exc).__name__)
            raise ApiError(400, "FunctionExecutionError", message) from None
        return result


def _load(path: Path) -> dict[str, Callable[..., Any]]:
    if not path.is_file():
        raise ConfigError(f"functions module not found: {path}")
    mod_name = "appusers_functions_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load functions module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise ConfigError(f"functions module {path} failed to import: {type(exc).__name__}: {exc}") from None
    found: dict[str, Callable[..., Any]] = {}
    for name, value in vars(module).items():
        if name.startswith("_") or not callable(value) or inspect.isclass(value):
            continue
        if getattr(value, "__module__", None) != mod_name:
            continue  # imported helpers are not functions of the app
        found[name] = value
    return found
