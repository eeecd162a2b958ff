"""User functions: a Python module whose public callables can be called over HTTP.

Every public callable *defined in* the module (not imported into it) is a
function; it is called as ``fn(context, *args)`` and may be sync or async. Sync
functions run on the event loop, so they should be quick; anything touching the
document store is async and must be awaited from an async function.

``context`` is a :class:`FunctionContext`: ``context.user`` (None in login-time
hooks such as custom-function authentication or confirmation functions),
``context.services.get("mongodb-atlas").db(name).collection(name)``,
``context.app_id`` and ``context.functions.execute(name, *args)``.

``context.services`` enforces the caller's rules (``appusers.server.rules``) unless
the context runs as system (``run_as_system``, default False as in App Services)
or has no caller (login-time hooks).
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


#: ``factory(raw_collection, database, collection)`` -> the collection under a caller's rules.
Ruled = Callable[[Any, str, str], Any]
#: ``rules(service, caller)`` -> the caller's :data:`Ruled` factory for that service.
RulesForCaller = Callable[[str, "FunctionUser"], Ruled]


class MongoDatabase:
    """``service.db(name)``: hands out document-store collections (under rules when ``ruled``)."""

    def __init__(self, store: Any, name: str, ruled: Ruled | None = None):
        self._store = store
        self._ruled = ruled
        self.name = name

    def collection(self, name: str) -> Any:
        """The ``DocumentCollection`` ``name`` of this database."""
        raw = self._store.collection(self.name, name)
        return raw if self._ruled is None else self._ruled(raw, self.name, name)

    __getitem__ = collection


class MongoService:
    """A MongoDB service as functions see it."""

    def __init__(self, store: Any, name: str, ruled: Ruled | None = None):
        self._store = store
        self._ruled = ruled
        self.name = name

    def db(self, name: str) -> MongoDatabase:
        """The database ``name``."""
        return MongoDatabase(self._store, name, self._ruled)


class Services:
    """``context.services``: the configured MongoDB services by name.

    Bound to a caller (:meth:`bound`), collections enforce that caller's rules
    unless ``system``; with no ``rules`` or no caller they are the store's own.
    """

    def __init__(
        self,
        store: Any,
        names: Sequence[str],
        rules: RulesForCaller | None = None,
        *,
        caller: FunctionUser | None = None,
        system: bool = True,
    ):
        self._store = store
        self._names = tuple(names)
        self._rules = rules
        self._caller = caller
        self._system = system

    def bound(self, caller: FunctionUser | None, system: bool) -> Services:
        """These services as ``caller`` uses them (``system``: bypassing rules)."""
        return Services(self._store, self._names, self._rules, caller=caller, system=system)

    def get(self, name: str) -> MongoService:
        """The service ``name``; KeyError if it is not configured."""
        if name not in self._names:
            raise KeyError(f"no service named {name!r}")
        if self._rules is None or self._system or self._caller is None:
            return MongoService(self._store, name)
        return MongoService(self._store, name, self._rules(name, self._caller))


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
    #: Run as the system user: ``context.services`` bypasses rules (App Services' default: False).
    run_as_system: bool = False

    def __attrs_post_init__(self) -> None:
        # Services follow the context: a copy made with attrs.evolve(run_as_system=...) rebinds them.
        self.services = self.services.bound(self.user, self.run_as_system)

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
