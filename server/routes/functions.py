"""Functions and services: ``functions/call`` (#21) and streaming calls (#22, ``watch``).

A function returning a document with a top-level string ``error`` (or a non-empty string
``error_code``) is answered as a failure, 400 ``FunctionExecutionError`` with that message,
because core-based SDKs would read such a 200 body as an error anyway;
realm-web and core therefore agree. Return such data nested (``{"result": {...}}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._errors import ApiError
from .._functions import request_info
from .._http import json_response
from .._mongo import call_mongo, parse_target, rule_error, store_errors
from .._sse import WatchSlots, decode_baas_request, serve_watch
from .._store import UserRecord
from .._tokens import TokenClaims
from ..rules import RuleDenied, RuleEvaluationError
from ._paths import APP

if TYPE_CHECKING:
    from .._app import ServerApp

__all__ = ["FunctionRoutes"]


class FunctionRoutes:
    """Function calls, MongoDB service calls and watch streams."""

    def __init__(self, server: ServerApp):
        self.server = server
        limits = server.config.limits
        self.watch_slots = WatchSlots(limits.watch_streams, limits.watch_streams_per_user)

    def routes(self) -> list[web.RouteDef]:
        """This group's routes."""
        return [
            web.post(APP + "/functions/call", self.function_call),
            web.get(APP + "/functions/call", self.stream),
        ]

    # ------------------------------------------------------------------ functions
    async def function_call(self, request: web.Request) -> web.StreamResponse:
        """#21 user functions and MongoDB service functions."""
        if (fault := self.server.enter("function_call")) is not None:
            return fault
        self.server.check_app(request)
        claims, user = await self.server.access(request)
        body = await self.server.read_body(request)
        result = await self._dispatch(body, user, request, claims)
        try:
            return json_response(result)
        except Exception:  # an un-encodable return value is the function's fault
            raise ApiError(
                400, "FunctionExecutionError", "function returned a value that cannot be encoded as EJSON"
            ) from None

    async def _dispatch(
        self, body: Mapping[str, Any], user: UserRecord, request: web.Request, claims: TokenClaims
    ) -> Any:
        name = body.get("name")
        if name is None:
            raise ApiError.missing_parameter("name")
        if not isinstance(name, str) or not name:
            raise ApiError.invalid_parameter("expected 'name' to be a non-empty string")
        arguments = body.get("arguments", [])
        if not isinstance(arguments, list):
            raise ApiError.invalid_parameter("expected 'arguments' to be an array")
        service = body.get("service")
        if service is not None:
            if service not in self.server.config.mongo_services:
                raise ApiError(404, "ServiceNotFound", f"service not found: {service!r}")
            ruled = self.server.rules.for_request(
                request, service=service, action=name, claims=claims, user=user
            )
            return await call_mongo(self.server.documents, name, arguments, ruled=ruled)
        # A client call: private functions answer as unknown ones, can_evaluate must hold.
        context = self.server.context(await self.server.function_user(user), request_info(request))
        result = await self.server.registry.call(name, context, arguments)
        if isinstance(result, Mapping) and (
            isinstance(result.get("error"), str)
            or (isinstance(result.get("error_code"), str) and result["error_code"])
        ):
            message = (
                result.get("error") if isinstance(result.get("error"), str) else str(result["error_code"])
            )
            raise ApiError(400, "FunctionExecutionError", message or "function returned an error")
        return result

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """#22 streaming call (``watch``) as Server-Sent Events."""
        if (fault := self.server.enter("stream")) is not None:
            return fault
        self.server.check_app(request)
        header_token = self.server.bearer(request)
        claims, user = await self.server.access(request, header_token or request.query.get("baas_at") or None)
        call = decode_baas_request(request.query.get("baas_request"))
        service = call.get("service")
        if call.get("name") != "watch" or service not in self.server.config.mongo_services:
            if service is not None and service not in self.server.config.mongo_services:
                raise ApiError(404, "ServiceNotFound", f"service not found: {service!r}")
            raise ApiError(400, "InvalidParameter", "only the MongoDB 'watch' function can be streamed")
        arg = parse_target(call.get("arguments"))
        ids = arg.get("ids")
        filter_ = arg.get("filter")
        if ids is not None and not isinstance(ids, list):
            raise ApiError.invalid_parameter("expected 'ids' to be an array")
        if filter_ is not None and not isinstance(filter_, Mapping):
            raise ApiError.invalid_parameter("expected 'filter' to be an object")
        ruled = self.server.rules.for_request(
            request, service=str(service), action="watch", claims=claims, user=user
        )
        with self.watch_slots.hold(user.id):
            try:
                raw = self.server.documents.collection(arg["database"], arg["collection"])
                watcher = await ruled(raw, arg["database"], arg["collection"]).open_watch(
                    ids=ids, filter=dict(filter_) if filter_ is not None else None
                )
            except (RuleDenied, RuleEvaluationError) as exc:
                raise rule_error(exc) from None
            except store_errors() as exc:
                raise ApiError(400, "MongoDBError", str(exc) or type(exc).__name__) from None
            # Tracked so that disabling the user or ending the session ends the stream too.
            with self.server.user_admin.stream(user.id, claims.session_id):
                return await serve_watch(request, watcher, self.server.streams)
