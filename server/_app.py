"""The server application: shared state, request plumbing, and the aiohttp app built from route groups.

The handlers live in ``routes/`` (one module per route group); they reach the shared
state (stores, token issuer, providers, functions) and the request helpers
(:meth:`ServerApp.read_body`, :meth:`ServerApp.access`, ...) through the
:class:`ServerApp` they are built with. Response conventions live in ``_http.py``.

One middleware turns an :class:`ApiError` into ``{"error", "error_code", "link"}``,
aiohttp's own 404/405/413 into the same shape, and any other exception into a bare
500 ``InternalServerError`` with no detail (logged server-side). It also answers
CORS preflight (OPTIONS) for every path.

Access tokens carry the user's custom data (``user_data``) only while it is at most
``custom_data.max_token_bytes`` of EJSON and the token fits the listener's header limit:
otherwise a user's own data would make every later request of theirs fail (issue 9
item 4). Left-out data stays readable in its document; this is logged once per user,
with sizes only.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import _ejson
from ._access import RuleAccess
from ._address import ClientAddresses
from ._config import ServerConfig
from ._errors import ApiError, ConfigError
from ._faults import ROUTE_NAMES, FaultReply, Faults
from ._functions import FunctionContext, FunctionRegistry, FunctionRequest, FunctionUser, Services, Values
from ._hashing import PasswordHasher
from ._http import CORS, Cors, error_response, finish_headers
from ._mongo import store_errors
from ._outbox import Outbox
from ._providers import Providers, provider_id
from ._secrets import digest
from ._store import SessionRecord, StoreUnavailableError, UserRecord, UserStore
from ._throttle import LoginThrottle
from ._tokens import TokenClaims, TokenIssuer
from ._triggers import AuthTriggers, auth_event_user
from ._user_admin import UserAdmin
from ._userpass import EmailPassword
from .documents import EmbeddedDocumentStore
from .routes import (
    AdminAccess,
    AdminRoutes,
    ApiKeyRoutes,
    FunctionRoutes,
    HookRoutes,
    SessionRoutes,
    UserpassRoutes,
)

__all__ = ["ROUTE_NAMES", "ServerApp"]

log = logging.getLogger("appusers.server")

_STATUS_CODES = {
    400: "BadRequest",
    401: "InvalidSession",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "RequestTooLarge",
    415: "BadRequest",
}
#: Users whose oversized custom data was logged as left out of their tokens (bounded).
_LOGGED_LIMIT = 10_000
#: Users whose custom data is cached (the oldest entry leaves first past this).
_CUSTOM_DATA_ENTRIES = 16_384


class ServerApp:
    """All server state plus the request plumbing the route groups share."""

    def __init__(
        self,
        *,
        config: ServerConfig,
        store: UserStore,
        documents: Any,
        issuer: TokenIssuer,
        outbox: Outbox,
        url: Callable[[], str],
        admin_token: str | None = None,
        admin: AdminAccess | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.store = store
        self.documents = documents
        self.issuer = issuer
        self.outbox = outbox
        self.url = url
        self.admin_token = admin_token
        self.faults = Faults()
        self.throttle = LoginThrottle(config.throttle, counters=store.counters)
        self.hasher = PasswordHasher(config.scrypt)
        self.addresses = ClientAddresses(config.http.trusted_proxies)
        on_creation = config.custom_data.on_user_creation_function
        hooks = config.providers.hook_functions() | ({on_creation} if on_creation else set())
        self.registry = FunctionRegistry(
            config.functions_module,
            config.limits.function_timeout,
            settings=config.function_settings,
            hooks=hooks,
        )
        for trigger in config.triggers:
            if trigger.function not in self.registry:
                raise ConfigError(f"trigger {trigger.name!r}: function {trigger.function!r} is not defined")
        if on_creation is not None and on_creation not in self.registry:
            raise ConfigError(
                f"custom_data.on_user_creation_function: function {on_creation!r} is not defined"
            )
        self.values = Values(config.values)
        self.triggers = AuthTriggers(config.triggers, lambda: self.context(None))
        self.rules = RuleAccess(self)
        self.services = Services(documents, config.mongo_services, self.rules.for_context)
        self.providers = Providers(
            config, store, self.throttle, lambda: self.context(None), hasher=self.hasher
        )
        self.email_password = EmailPassword(
            settings=lambda: config.providers.local_userpass,
            store=store,
            registry=self.registry,
            context=lambda: self.context(None),
            outbox=outbox,
            hasher=self.hasher,
            throttle=config.throttle,
        )
        self.admin = admin
        self.user_admin = UserAdmin(
            store=store,
            app_id=config.app_id,
            purge=config.anonymous_purge,
            scrypt=config.scrypt,
            userpass_provider_id=lambda: (
                provider_id(config.app_id, "local-userpass") if config.providers.local_userpass else None
            ),
            clock=clock,
        )
        self._oversized_logged: set[str] = set()
        self._custom_data: dict[str, tuple[int, dict[str, Any]]] = {}
        self.streams: set[asyncio.Task[Any]] = set()
        self.closing = False

    # ------------------------------------------------------------------ plumbing
    @property
    def stats(self) -> collections.Counter[str]:
        """Handled requests by route name."""
        return self.faults.stats

    def context(self, user: FunctionUser | None, request: FunctionRequest | None = None) -> FunctionContext:
        """A function context for ``user`` (None in login-time hooks and triggers: system)."""
        return FunctionContext(
            app_id=self.config.app_id,
            service_root=self.services,
            registry=self.registry,
            user=user,
            values=self.values,
            environment=self.config.environment,
            request=request,
        )

    async def user_created(self, user: UserRecord) -> None:
        """Run the user creation function (if configured) for a user a log-in just created.

        Raises the function's ApiError after deleting the user again: App Services fails the
        account creation when that function fails.
        """
        name = self.config.custom_data.on_user_creation_function
        if name is None:
            return
        context = self.context(None)
        try:
            await self.registry.invoke(name, context, [auth_event_user(user)])
        except ApiError:
            await self.store.delete_user(user.id)
            raise

    def user_deleted(self, user: UserRecord) -> None:
        """Fire the ``DELETE`` authentication triggers for ``user`` (already deleted from the store).

        Every route that deletes a user calls this once, after the deletion succeeded.
        """
        self.triggers.fire("DELETE", user, [i.provider_type for i in user.identities])

    def client_address(self, request: web.Request) -> str:
        """The address throttles count ``request`` against (forwarded only by trusted proxies)."""
        return self.addresses.client(request.remote, request.headers)

    def enter(self, route: str) -> web.StreamResponse | None:
        """Count a request to ``route``; an injected fault's reply if one is pending."""
        return self.faults.enter(route)

    def build(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(
            middlewares=[self._middleware], client_max_size=self.config.limits.max_body_bytes
        )
        app[CORS] = Cors(self.config.http.allowed_origins)
        groups: list[Any] = [
            SessionRoutes(self),
            UserpassRoutes(self),
            ApiKeyRoutes(self),
            FunctionRoutes(self),
        ]
        if self.admin_token is not None:
            groups.append(HookRoutes(self))
        if self.admin is not None:
            groups.append(AdminRoutes(self, self.admin))
        for group in groups:
            app.router.add_routes(group.routes())
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return request.app[CORS].preflight(request)
        resp: web.StreamResponse
        try:
            resp = await handler(request)
            if isinstance(resp, FaultReply):
                await self.faults.act(request, resp)
                return resp  # the connection is gone: aiohttp drops this quietly
        except ApiError as err:
            resp = error_response(err)
        except web.HTTPException as exc:
            # Routing failures (404/405) and aiohttp's own 413 get App Services bodies too.
            code = _STATUS_CODES.get(exc.status, "BadRequest" if exc.status < 500 else "InternalServerError")
            message = {404: "route not found", 405: "method not allowed", 413: "request body too large"}.get(
                exc.status, exc.reason.lower()
            )
            resp = error_response(ApiError(exc.status, code, message))
        except asyncio.CancelledError:
            raise
        except StoreUnavailableError as exc:
            # A shared database restarting or out of reach: retryable, and no traceback per request.
            log.warning("%s %s: %s", request.method, request.path, exc)
            resp = error_response(ApiError(503, "ServiceUnavailable", "user store unavailable; retry"))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            resp = error_response(ApiError(500, "InternalServerError", "internal server error"))
        finish_headers(request, resp)
        return resp

    async def read_body(self, request: web.Request) -> dict[str, Any]:
        """The request body as an EJSON object (canonical or relaxed); ``{}`` when empty."""
        content = request.content
        if content.is_eof():
            # All of it has arrived (the usual small body, one packet with the headers):
            # taken as it is, without a timer or request.read()'s chunk loop; the size limit
            # request.read() would apply is applied here.
            raw = content.read_nowait()
            limit = request.client_max_size
            if limit and len(raw) > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
        else:
            try:
                async with asyncio.timeout(self.config.http.read_timeout):
                    raw = await request.read()  # raises HTTPRequestEntityTooLarge over the limit
            except TimeoutError:
                raise ApiError(408, "RequestTimeout", "request body not received in time") from None
        if not raw.strip():
            return {}
        try:
            value = _ejson.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError.bad_request("invalid JSON in request body") from None
        if not isinstance(value, dict):
            raise ApiError.bad_request("request body must be a JSON object")
        return value

    def check_app(self, request: web.Request) -> None:
        if request.match_info.get("app_id") != self.config.app_id:
            raise ApiError(
                404,
                "AppNotFound",
                f"cannot find app using Client App ID {request.match_info.get('app_id', '')!r}",
            )

    @staticmethod
    def bearer(request: web.Request) -> str | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError.invalid_session("invalid session: expected a Bearer token")
        token = token.strip()
        if token in ("", "null", "undefined"):
            raise ApiError.invalid_session("invalid session: no token")
        return token

    async def access(self, request: web.Request, token: str | None = None) -> tuple[TokenClaims, UserRecord]:
        """Verify an access token: signature, kind, expiry, user, generation and session."""
        token = token if token is not None else self.bearer(request)
        if token is None:
            raise ApiError.must_authenticate()
        claims = self.issuer.verify(token, "access")
        user = await self.store.get_user(claims.user_id)
        # A disabled user's tokens (signed by us, so really its own) say so, before the
        # revocation checks: clients tell "account disabled" from "session expired" by it.
        if user is not None and user.disabled:
            raise ApiError.user_disabled()
        if user is None or user.generation != claims.generation:
            raise ApiError.invalid_session("invalid session: access token revoked")
        session = await self.store.get_session(claims.session_id)
        if session is None or session.user_id != user.id:
            raise ApiError.invalid_session("invalid session: session revoked")
        return claims, user

    async def refresh_session(
        self, request: web.Request, missing: str = "invalid session: failed to find refresh token"
    ) -> tuple[SessionRecord, UserRecord]:
        """Verify a refresh token against its stored digest."""
        token = self.bearer(request)
        if token is None:
            raise ApiError.must_authenticate()
        claims = self.issuer.verify(token, "refresh", not_found=missing)
        owner = await self.store.get_user(claims.user_id)
        if owner is not None and owner.disabled:
            raise ApiError.user_disabled()
        session = await self.store.get_session(claims.session_id)
        if session is None or not hmac.compare_digest(session.refresh_digest, digest(token)):
            raise ApiError.invalid_session(missing)
        if session.expires_at < time.time():
            await self.store.delete_session(session.id)
            raise ApiError.invalid_session("invalid session: refresh token expired")
        user = owner if owner is not None and owner.id == session.user_id else None
        if user is None:
            user = await self.store.get_user(session.user_id)
        if user is None:
            raise ApiError.invalid_session(missing)
        return session, user

    async def custom_data(self, user_id: str) -> dict[str, Any] | None:
        """The user's custom data document as token claims (``{}``: none); None when turned off.

        Callers must not modify the dict: it may be the cached one.
        """
        settings = self.config.custom_data
        if not settings.enabled:
            return None
        # The embedded store tells when the collection changed without a hop to its worker
        # thread: a read cached under an unchanged version is what find_one would answer.
        # Other stores (MongoDB, written by other processes too) are asked every time.
        version = (
            self.documents.write_version(settings.database, settings.collection)
            if isinstance(self.documents, EmbeddedDocumentStore)
            else None
        )
        if version is not None:
            cached = self._custom_data.get(user_id)
            if cached is not None and cached[0] == version:
                return cached[1]
        try:
            coll = self.documents.collection(settings.database, settings.collection)
            doc = await coll.find_one({settings.user_id_field: user_id})
        except store_errors() as exc:
            log.warning("custom user data lookup failed: %s", type(exc).__name__)
            return {}
        data = {} if doc is None else dict(_ejson.to_claim(doc))
        if version is not None:
            # Read after ``version`` was taken: a write in between only makes the entry stale.
            if len(self._custom_data) >= _CUSTOM_DATA_ENTRIES and user_id not in self._custom_data:
                del self._custom_data[next(iter(self._custom_data))]
            self._custom_data[user_id] = (version, data)
        return data

    async def access_token(self, user: UserRecord, session: SessionRecord, *, created: bool = False) -> str:
        """A new access token for ``user``'s ``session``, never longer than the header limit.

        ``created``: this request created the user. Its custom-data document cannot exist yet
        (nobody knew the id) unless the user creation function wrote one, so without such a
        function it is not looked up: a first log-in skips a document-store round trip.
        """
        settings = self.config.custom_data
        if created and settings.enabled and not settings.on_user_creation_function:
            data: dict[str, Any] | None = {}
        else:
            data = await self.custom_data(user.id)
        size = len(_ejson.dumps(data).encode("utf-8")) if data else 0
        if size > self.config.custom_data.max_token_bytes:
            self._left_out(user.id, size)
            data = None

        def issue(user_data: dict[str, Any] | None) -> str:
            return self.issuer.access_token(
                user_id=user.id,
                session_id=session.id,
                device_id=session.device_id,
                generation=user.generation,
                user_data=user_data,
            )

        token = issue(data)
        # The header field carrying it: "Authorization: Bearer <token>" (a little slack for clients).
        if data is not None and len(token) + 64 > self.config.http.max_header_bytes:
            self._left_out(user.id, size)
            token = issue(None)
        return token

    def _left_out(self, user_id: str, size: int) -> None:
        if user_id in self._oversized_logged:
            return
        if len(self._oversized_logged) < _LOGGED_LIMIT:
            self._oversized_logged.add(user_id)
        log.warning(
            "custom data of user %s is %d bytes of EJSON, over the access token's limit of %d:"
            " left out of its access tokens (still readable in its document)",
            user_id,
            size,
            self.config.custom_data.max_token_bytes,
        )

    async def function_user(self, user: UserRecord) -> FunctionUser:
        return FunctionUser(
            id=user.id,
            type=user.type,
            identities=tuple(
                {
                    "id": i.id,
                    "provider_type": i.provider_type,
                    "provider_id": i.provider_id,
                    "provider_data": dict(i.provider_data),
                }
                for i in user.identities
            ),
            data=dict(user.data),
            custom_data=_own_copy(await self.custom_data(user.id)),
        )

    async def revoke_access_tokens(self, user_id: str) -> None:
        """Existing access tokens of the user stop working; refresh tokens still do."""
        await self.store.bump_generation(user_id)

    async def revoke_sessions(self, user_id: str) -> None:
        """Every session (refresh token, and so its access tokens and streams) of the user ends."""
        await self.user_admin.end_sessions(user_id)


def _own_copy(custom_data: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of (cached) custom data with BSON values, the call's own to change."""
    if not custom_data:
        return {}
    value: dict[str, Any] = _ejson.loads(json.dumps(custom_data))
    return value
