"""User functions: Python callables run as ``fn(context, *args)``, their settings and ``context``.

Functions come from a Python module (every public callable *defined in* it) and from
per-function source files (``functions/<name>.py`` of an exported app, defining
``main(context, *args)``). Either may be sync or async. Sync functions run on the event
loop, so they should be quick; anything touching the document store is async and must be
awaited from an async function.

Settings (:class:`~appusers.server._function_settings.FunctionSettings`) decide who may
call a function: a **private** function is answered to clients exactly as an unknown one
(``FunctionNotFound``, same message, so privacy cannot be probed) but stays callable
through ``context.functions.execute``, provider hooks and triggers; provider hooks are
private unless a setting says otherwise. ``can_evaluate`` is a rule expression checked on
every client call (``%%user``, ``%%values``, ``%%environment``, ``%%request``, ``%%args``);
false gives ``FunctionExecutionError`` ``rule not matched for function "<name>"``.
A function runs as system (``context.run_as_system``) when its setting says so and
whenever there is no calling user (provider hooks, triggers); otherwise as its caller.

A function whose only source is JavaScript (``<name>.js`` of a real export) is not run:
calling it answers ``FunctionExecutionError`` saying so, and the loader warns at start-up.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import ApiError, ConfigError
from ._function_settings import EnvironmentSettings, FunctionSettings

if TYPE_CHECKING:
    from aiohttp import web

    from .rules import ExpressionEnv

__all__ = [
    "FunctionContext",
    "FunctionRegistry",
    "FunctionRequest",
    "FunctionUser",
    "MongoDatabase",
    "MongoService",
    "Services",
    "Values",
    "request_info",
]

log = logging.getLogger("appusers.server")

#: Request headers and query keys functions never see: credentials of the caller or the server.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-appusers-admin"}
)
_SECRET_WORDS = ("token", "secret", "password", "apikey", "api-key", "api_key", "baas_at")


@attrs.frozen
class FunctionUser:
    """The calling user as functions see it."""

    id: str
    type: str
    identities: tuple[Mapping[str, Any], ...]
    data: Mapping[str, str]
    custom_data: Mapping[str, Any]

    def as_expansion(self) -> dict[str, Any]:
        """``%%user``: ``{id, type, data, custom_data, identities: [{id, provider_type}]}``."""
        return {
            "id": self.id,
            "type": self.type,
            "data": dict(self.data),
            "custom_data": dict(self.custom_data),
            "identities": [
                {"id": i.get("id"), "provider_type": i.get("provider_type")} for i in self.identities
            ],
        }


#: Names already classified (every call classifies each request header); bounded, as
#: clients choose the names.
_SECRET_SEEN: dict[str, bool] = {}
_SECRET_SEEN_ENTRIES = 1024


def _is_secret(name: str) -> bool:
    known = _SECRET_SEEN.get(name)
    if known is not None:
        return known
    lowered = name.lower()
    secret = lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_WORDS)
    if len(_SECRET_SEEN) < _SECRET_SEEN_ENTRIES:
        _SECRET_SEEN[name] = secret
    return secret


@attrs.frozen
class FunctionRequest:
    """``context.request``: the HTTP request that led to the call, without its secrets.

    No Authorization, cookie or admin header, and no header or query key whose name
    mentions a token, secret, password or API key; no body.
    """

    remote_address: str
    method: str = "POST"
    #: Header name -> every value it was sent with.
    headers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    raw_query_string: str = ""
    user_agent: str = ""
    referrer: str = ""
    service: str | None = None
    action: str | None = None

    def as_expansion(self) -> dict[str, Any]:
        """``%%request`` with App Services' names (``remoteIPAddress``, ``requestHeaders``...)."""
        return {
            "remoteIPAddress": self.remote_address,
            "requestHeaders": {name: list(values) for name, values in self.headers.items()},
            "httpMethod": self.method,
            "rawQueryString": self.raw_query_string,
            "httpReferrer": self.referrer,
            "httpUserAgent": self.user_agent,
            "service": self.service,
            "action": self.action,
        }


def request_info(
    request: web.Request, service: str | None = None, action: str | None = None
) -> FunctionRequest:
    """The non-secret parts of an aiohttp request."""
    headers: dict[str, tuple[str, ...]] = {}
    for name, value in request.headers.items():
        if not _is_secret(name):
            seen = headers.get(name)
            headers[name] = (value,) if seen is None else (*seen, value)
    query_string = request.query_string
    query = (
        "&".join(part for part in query_string.split("&") if part and not _is_secret(part.partition("=")[0]))
        if query_string
        else ""
    )
    return FunctionRequest(
        remote_address=request.remote or "",
        method=request.method,
        headers=headers,
        raw_query_string=query,
        user_agent=request.headers.get("User-Agent", ""),
        referrer=request.headers.get("Referer", ""),
        service=service,
        action=action,
    )


class Values:
    """``context.values``: the app's values by name."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def get(self, name: str) -> Any:
        """The value ``name`` (a copy: functions cannot change it for others); None if undefined."""
        return copy.deepcopy(self._values.get(name))

    def as_expansion(self) -> dict[str, Any]:
        """``%%values``."""
        return copy.deepcopy(self._values)


#: ``factory(raw_collection, database, collection)`` -> the collection under a caller's rules.
Ruled = Callable[[Any, str, str], Any]
#: ``rules(service, context)`` -> the :data:`Ruled` factory of that context's caller.
RulesForContext = Callable[[str, "FunctionContext"], Ruled]


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

    Bound to a context (:meth:`bound`), collections enforce the caller's rules
    (``appusers.server.rules``) unless the context runs as system or has no caller.
    """

    def __init__(
        self,
        store: Any,
        names: Sequence[str],
        rules: RulesForContext | None = None,
        context: FunctionContext | None = None,
    ):
        self._store = store
        self._names = tuple(names)
        self._rules = rules
        self._context = context

    def get(self, name: str) -> MongoService:
        """The service ``name``; KeyError if it is not configured."""
        if name not in self._names:
            raise KeyError(f"no service named {name!r}")
        context = self._context
        if self._rules is None or context is None or context.run_as_system or context.user is None:
            return MongoService(self._store, name)
        return MongoService(self._store, name, self._rules(name, context))

    def bound(self, context: FunctionContext) -> Services:
        """The services as ``context`` may use them (its user's rules unless ``run_as_system``)."""
        return Services(self._store, self._names, self._rules, context)


class _Functions:
    """``context.functions``: call another function (private ones too) with the same caller."""

    def __init__(self, context: FunctionContext):
        self._context = context

    async def execute(self, name: str, *args: Any) -> Any:
        """Call function ``name`` with ``args``."""
        return await self._context.registry.invoke(name, self._context, list(args))


@attrs.frozen
class FunctionContext:
    """What a function receives as its first argument."""

    app_id: str
    #: The MongoDB services before binding to this context (``services`` binds them).
    service_root: Services = attrs.field(repr=False)
    registry: FunctionRegistry = attrs.field(repr=False)
    #: The caller; None in provider hooks and triggers (which run as system).
    user: FunctionUser | None = None
    values: Values = attrs.field(factory=lambda: Values({}), repr=False)
    environment: EnvironmentSettings = attrs.field(factory=EnvironmentSettings)
    request: FunctionRequest | None = None
    #: Whether ``context.services`` bypasses the rules (set per call by the registry).
    run_as_system: bool = False

    @property
    def services(self) -> Services:
        """``context.services.get("mongodb-atlas").db(name).collection(name)``."""
        return self.service_root.bound(self)

    @property
    def functions(self) -> _Functions:
        """Call other functions: ``await context.functions.execute("name", ...)``."""
        return _Functions(self)

    def running_as_system(self) -> bool:
        """Whether this call runs as the system user."""
        return self.run_as_system

    #: The JavaScript spelling, for ported functions.
    runningAsSystem = running_as_system

    def expression_env(
        self, args: Any = None, function: Callable[[str, list[Any]], Awaitable[Any]] | None = None
    ) -> ExpressionEnv:
        """What a rule expression evaluated for this call sees."""
        from .rules import MISSING, ExpressionEnv

        return ExpressionEnv(
            user=self.user.as_expansion() if self.user is not None else {},
            values=self.values.as_expansion(),
            environment=self.environment.as_expansion(),
            request=self.request.as_expansion() if self.request is not None else {},
            args=MISSING if args is None else args,
            function=function,
        )


class FunctionRegistry:
    """Every loaded function, with its settings."""

    def __init__(
        self,
        module_path: Path | None,
        timeout: float = 60.0,
        settings: Iterable[FunctionSettings] = (),
        hooks: Iterable[str] = (),
    ):
        self._functions: dict[str, Callable[..., Any]] = {}
        self._timeout = timeout
        self._settings = {s.name: s for s in settings}
        self._hooks = frozenset(hooks)
        #: Functions whose only source is JavaScript: name -> that file.
        self.javascript_only: dict[str, Path] = {}
        if module_path is not None:
            self._functions = _public_functions(_import_file(module_path, "functions module"))
        for setting in self._settings.values():
            if setting.source is None:
                if setting.name not in self._functions:
                    raise ConfigError(f"functions.config: no function named {setting.name!r} is defined")
            elif setting.source.suffix == ".js":
                self.javascript_only[setting.name] = setting.source
                self._functions[setting.name] = _javascript_stub(setting.name, setting.source)
            else:
                self._functions[setting.name] = _main_of(setting.source, setting.name)
        # Every function's settings, defaults included, made once: each call reads them thrice.
        self._resolved = {
            name: self._settings.get(name) or FunctionSettings(name=name, private=name in self._hooks)
            for name in self._functions
        }

    def __contains__(self, name: str) -> bool:
        return name in self._functions

    def names(self) -> list[str]:
        """Every function name, private ones included."""
        return sorted(self._functions)

    def settings(self, name: str) -> FunctionSettings:
        """The settings of ``name`` (defaults when it has none)."""
        found = self._resolved.get(name)
        if found is not None:
            return found
        return self._settings.get(name) or FunctionSettings(name=name, private=name in self._hooks)

    def is_private(self, name: str) -> bool:
        """Whether clients are refused ``name``."""
        return self.settings(name).private

    async def call(self, name: str, context: FunctionContext, args: Sequence[Any]) -> Any:
        """A client's call: private functions do not exist for it and ``can_evaluate`` must hold."""
        settings = self._resolved.get(name)
        if settings is None or settings.private:
            raise _not_found(name)
        expression = settings.can_evaluate
        if expression is not None and not await self._can_evaluate(expression, context, args):
            raise ApiError(400, "FunctionExecutionError", f'rule not matched for function "{name}"')
        return await self.invoke(name, context, args)

    async def _can_evaluate(self, expression: Any, context: FunctionContext, args: Sequence[Any]) -> bool:
        from .rules import RuleEvaluationError, evaluate

        async def hook(function: str, arguments: list[Any]) -> Any:
            return await self.invoke(function, context, arguments)

        try:
            return await evaluate(expression, context.expression_env(list(args), hook))
        except (RuleEvaluationError, ApiError) as exc:
            # A broken expression or a failing %function denies; the reason stays in the log.
            log.info("can_evaluate could not be evaluated: %s", type(exc).__name__)
            return False

    async def invoke(self, name: str, context: FunctionContext, args: Sequence[Any]) -> Any:
        """Run function ``name`` (private or not); FunctionNotFound / FunctionExecutionError as ApiError."""
        fn = self._functions.get(name)
        if fn is None:
            raise _not_found(name)
        system = context.user is None or self.settings(name).run_as_system
        if system != context.run_as_system:
            context = attrs.evolve(context, run_as_system=system)
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


def _not_found(name: str) -> ApiError:
    return ApiError(404, "FunctionNotFound", f"function not found: {name!r}")


def _javascript_stub(name: str, source: Path) -> Callable[..., Any]:
    message = (
        f"function {name!r} has only a JavaScript source ({source.name}), which this server does not run; "
        f"port it to {source.with_suffix('.py').name} defining main(context, *args)"
    )

    def javascript_only(context: FunctionContext, *args: Any) -> Any:
        raise ApiError(400, "FunctionExecutionError", message)

    return javascript_only


def _import_file(path: Path, what: str) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    mod_name = "appusers_functions_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {what} {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise ConfigError(f"{what} {path} failed to import: {type(exc).__name__}: {exc}") from None
    return module


def _public_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for name, value in vars(module).items():
        if name.startswith("_") or not callable(value) or inspect.isclass(value):
            continue
        if getattr(value, "__module__", None) != module.__name__:
            continue  # imported helpers are not functions of the app
        found[name] = value
    return found


def _main_of(path: Path, name: str) -> Callable[..., Any]:
    module = _import_file(path, f"source of function {name!r}")
    main = getattr(module, "main", None)
    if not callable(main) or inspect.isclass(main):
        raise ConfigError(f"{path}: main: the source of function {name!r} must define main(context, *args)")
    return main  # type: ignore[no-any-return]
