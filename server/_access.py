"""What the rules see of a caller: ``%%user``, ``%%request`` and the ``%function`` hook.

HTTP calls of the MongoDB service (``functions/call`` with ``service``, and
``watch``) always run under the caller's rules: every client is an application
user, server API key users included (``%%user.type`` is ``server``). Functions
run under their caller's rules unless they run as system (``FunctionContext.
run_as_system``) or have no caller (login-time hooks); server-internal lookups
such as custom user data use the store directly and bypass rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import _ejson
from ._functions import FunctionContext, request_info
from .rules import FunctionHook, RuleBook, RuledCollection, RuleEnforcer, user_document

if TYPE_CHECKING:
    from ._app import ServerApp
    from ._store import UserRecord
    from ._tokens import TokenClaims

__all__ = ["RuleAccess", "RuledFactory"]

#: ``factory(raw_collection, database, collection)`` -> the collection under one caller's rules.
RuledFactory = Callable[[Any, str, str], RuledCollection]

#: Request headers never shown to rules (they carry credentials).
class RuleAccess:
    """The server's rules, bound to callers."""

    def __init__(self, server: ServerApp) -> None:
        self._server = server
        config = server.config
        self.enforcer = RuleEnforcer(
            RuleBook(config.rules, config.default_rules),
            values=server.values.as_expansion(),
            environment=config.environment.as_expansion(),
        )

    def for_request(
        self, request: web.Request, *, service: str, action: str, claims: TokenClaims, user: UserRecord
    ) -> RuledFactory:
        """Collections under the rules of the HTTP caller (custom data as held in its access token)."""
        custom_data = _ejson.loads(json.dumps(claims.user_data or {}))
        who = user_document(
            id=user.id,
            type=user.type,
            data=user.data,
            custom_data=custom_data if isinstance(custom_data, Mapping) else {},
            identities=[{"id": i.id, "provider_type": i.provider_type} for i in user.identities],
        )
        server = self._server

        async def call(name: str, args: list[Any]) -> Any:
            return await server.registry.invoke(name, server.context(await server.function_user(user)), args)

        return self._factory(service, who, request_info(request, service, action).as_expansion(), call)

    def for_context(self, service: str, context: FunctionContext) -> RuledFactory:
        """Collections under the rules of a function context's caller (its values, environment, request)."""
        server = self._server
        caller = context.user

        async def call(name: str, args: list[Any]) -> Any:
            return await server.registry.invoke(name, server.context(caller), args)

        env = context.expression_env(function=call)
        enforcer = self.enforcer

        def make(raw: Any, database: str, collection: str) -> RuledCollection:
            return enforcer.with_env(raw, service=service, database=database, collection=collection, env=env)

        return make

    def _factory(
        self, service: str, who: Mapping[str, Any], req: Mapping[str, Any], call: FunctionHook
    ) -> RuledFactory:
        enforcer = self.enforcer

        def make(raw: Any, database: str, collection: str) -> RuledCollection:
            return enforcer.collection(
                raw,
                service=service,
                database=database,
                collection=collection,
                user=who,
                request=req,
                function=call,
            )

        return make
