"""The email/password provider's account actions over HTTP (register, confirm, reset).

The actions themselves live in ``_userpass.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .._errors import ApiError
from .._http import empty_response
from ._paths import APP

if TYPE_CHECKING:
    from .._app import ServerApp

__all__ = ["UserpassRoutes"]


class UserpassRoutes:
    """register, confirm, confirm/send, confirm/call, reset, reset/send, reset/call."""

    def __init__(self, server: ServerApp):
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        """This group's routes."""
        return [
            web.post(
                APP + "/auth/providers/{provider}/{action:(register|confirm|confirm/send|confirm/call|reset"
                "|reset/send|reset/call)}",
                self.userpass,
            ),
        ]

    # ------------------------------------------------------------------ email/password
    async def userpass(self, request: web.Request) -> web.StreamResponse:
        """#14-#20 the email/password provider actions (an Authorization header is ignored)."""
        if (fault := self.server.enter("userpass")) is not None:
            return fault
        self.server.check_app(request)
        provider = request.match_info["provider"]
        settings = self.server.config.providers.local_userpass
        if provider != "local-userpass" or settings is None:
            raise ApiError(404, "AuthProviderNotFound", f"authentication provider {provider!r} not found")
        body = await self.server.read_body(request)
        action = request.match_info["action"]
        await self.server.email_password.handle(action, body, self.server.client_address(request))
        return empty_response(201 if action == "register" else 204)
