"""Test hooks over HTTP (``/_appusers/admin/...``, header ``X-Appusers-Admin``).

Served only when the server has an admin token; not part of App Services' protocol.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from aiohttp import web

from .._errors import ApiError
from .._faults import ROUTE_NAMES, Fault
from .._http import empty_response, plain_json_response

if TYPE_CHECKING:
    from .._app import ServerApp

__all__ = ["HookRoutes"]


class HookRoutes:
    """Revoke tokens, inject faults, read the outbox and the request counters."""

    def __init__(self, server: ServerApp):
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        """This group's routes."""
        return [
            web.post("/_appusers/admin/revoke_access_tokens", self.admin_revoke_access),
            web.post("/_appusers/admin/revoke_sessions", self.admin_revoke_sessions),
            web.post("/_appusers/admin/fault", self.admin_fault),
            web.post("/_appusers/admin/fault/release", self.admin_fault_release),
            web.get("/_appusers/admin/outbox", self.admin_outbox),
            web.get("/_appusers/admin/stats", self.admin_stats),
        ]

    def _admin(self, request: web.Request) -> None:
        given = request.headers.get("X-Appusers-Admin", "")
        assert self.server.admin_token is not None
        if not hmac.compare_digest(given.encode(), self.server.admin_token.encode()):
            raise ApiError(403, "Forbidden", "admin token required")

    async def _admin_user_id(self, request: web.Request) -> str:
        self._admin(request)
        body = await self.server.read_body(request)
        user_id = body.get("user_id")
        if not isinstance(user_id, str):
            raise ApiError.missing_parameter("user_id")
        return user_id

    async def admin_revoke_access(self, request: web.Request) -> web.StreamResponse:
        """POST /_appusers/admin/revoke_access_tokens {"user_id"}."""
        await self.server.revoke_access_tokens(await self._admin_user_id(request))
        return empty_response(204)

    async def admin_revoke_sessions(self, request: web.Request) -> web.StreamResponse:
        """POST /_appusers/admin/revoke_sessions {"user_id"}."""
        await self.server.revoke_sessions(await self._admin_user_id(request))
        return empty_response(204)

    async def admin_fault(self, request: web.Request) -> web.StreamResponse:
        """POST /_appusers/admin/fault: ``{"route", "status", "body"?, "headers"?, "times"?}``, or
        ``{"route", "sequence": [step, ...]}`` where a step is ``null`` (normal service),
        ``{"reset": true}``, ``{"hang": true}`` or ``{"status", "body"?, "headers"?}``."""
        self._admin(request)
        body = await self.server.read_body(request)
        route = body.get("route")
        if not isinstance(route, str) or route not in ROUTE_NAMES:
            raise ApiError.invalid_parameter(f"route must be one of {', '.join(ROUTE_NAMES)}")
        sequence = body.get("sequence")
        if sequence is not None:
            if not isinstance(sequence, list) or len(sequence) > 10_000:
                raise ApiError.invalid_parameter("sequence must be an array of at most 10000 steps")
            try:
                steps = [Fault.from_json(step) for step in sequence]
            except ValueError as exc:
                raise ApiError.invalid_parameter(str(exc)) from None
            self.server.faults.sequence(route, steps)
            return empty_response(204)
        status, times = body.get("status"), body.get("times", 1)
        fault_body, headers = body.get("body"), body.get("headers")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ApiError.invalid_parameter("status must be an HTTP status code")
        if not isinstance(times, int) or isinstance(times, bool) or not 0 <= times <= 10_000:
            raise ApiError.invalid_parameter("times must be an integer from 0 to 10000")
        try:
            step = Fault.from_json({"status": status, "body": fault_body, "headers": headers})
        except ValueError as exc:
            raise ApiError.invalid_parameter(str(exc)) from None
        self.server.faults.sequence(route, [step] * times)
        return empty_response(204)

    async def admin_fault_release(self, request: web.Request) -> web.StreamResponse:
        """POST /_appusers/admin/fault/release: let every hanging request go."""
        self._admin(request)
        self.server.faults.release()
        return empty_response(204)

    async def admin_outbox(self, request: web.Request) -> web.StreamResponse:
        """GET /_appusers/admin/outbox."""
        self._admin(request)
        return plain_json_response(self.server.outbox.read())

    async def admin_stats(self, request: web.Request) -> web.StreamResponse:
        """GET /_appusers/admin/stats."""
        self._admin(request)
        return plain_json_response(dict(self.server.stats))
