"""The aiohttp application: routes, middleware and handlers of protocol.md §1.2.

Response conventions live in ``_http.py``, the email/password account actions in
``_userpass.py``, streaming in ``_sse.py``; this module wires them to routes and
owns authentication of requests (access and refresh tokens), login and linking,
sessions, profile, API keys, function dispatch and the admin hooks.

One middleware turns an :class:`ApiError` into ``{"error", "error_code", "link"}``,
aiohttp's own 404/405/413 into the same shape, and any other exception into a bare
500 ``InternalServerError`` with no detail (logged server-side). It also answers
CORS preflight (OPTIONS) for every path.

Function results: a function returning a document with a top-level string
``error`` (or a non-empty string ``error_code``) is answered as a failure,
400 ``FunctionExecutionError`` with that message, because core-based SDKs would
read such a 200 body as an error anyway (protocol.md §2.5); realm-web and core
therefore agree. Return such data nested (``{"result": {...}}``) to get it through.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from . import _ejson
from ._config import ServerConfig
from ._errors import ApiError
from ._functions import FunctionContext, FunctionRegistry, FunctionUser, Services
from ._http import empty_response, error_response, finish_headers, json_response, plain_json_response
from ._mongo import call_mongo, parse_target, store_errors
from ._outbox import Outbox
from ._providers import Providers, Resolved
from ._secrets import digest, new_object_id, new_secret
from ._sse import WatchSlots, decode_baas_request, serve_watch
from ._store import (
    ApiKeyRecord,
    DuplicateError,
    SessionRecord,
    UserRecord,
    UserStore,
)
from ._throttle import LoginThrottle
from ._tokens import TokenClaims, TokenIssuer
from ._userpass import EmailPassword

__all__ = ["ROUTE_NAMES", "ServerApp"]

log = logging.getLogger("appusers.server")

P = "/api/client/v2.0"
ROUTE_NAMES = (
    "location",
    "login",
    "link",
    "refresh",
    "logout",
    "profile",
    "delete",
    "api_keys",
    "userpass",
    "function_call",
    "stream",
)
_ZERO_ID = "0" * 24
_STATUS_CODES = {
    400: "BadRequest",
    401: "InvalidSession",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "RequestTooLarge",
    415: "BadRequest",
}
_CORS_HEADERS = "Authorization, Content-Type, Accept, X-Requested-With, X-Appusers-Admin"
_CORS_METHODS = "GET, POST, PUT, DELETE, OPTIONS"


@attrs.define
class _Fault:
    status: int
    body: Mapping[str, Any] | None
    remaining: int


class ServerApp:
    """All server state plus the request handlers."""

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
    ):
        self.config = config
        self.store = store
        self.documents = documents
        self.issuer = issuer
        self.outbox = outbox
        self._url = url
        self._admin_token = admin_token
        self.stats: collections.Counter[str] = collections.Counter()
        self._faults: dict[str, _Fault] = {}
        self.throttle = LoginThrottle(config.throttle)
        self.registry = FunctionRegistry(config.functions_module, config.limits.function_timeout)
        self.services = Services(documents, config.mongo_services)
        self.providers = Providers(config, store, self.throttle, lambda: self.context(None))
        self.email_password = EmailPassword(
            settings=lambda: config.providers.local_userpass,
            store=store,
            registry=self.registry,
            context=lambda: self.context(None),
            outbox=outbox,
            scrypt=config.scrypt,
        )
        self.streams: set[asyncio.Task[Any]] = set()
        self.watch_slots = WatchSlots(config.limits.watch_streams, config.limits.watch_streams_per_user)
        self.closing = False

    # ------------------------------------------------------------------ plumbing
    def context(self, user: FunctionUser | None) -> FunctionContext:
        """A function context for ``user`` (None in login-time hooks)."""
        return FunctionContext(
            app_id=self.config.app_id, services=self.services, registry=self.registry, user=user
        )

    def inject_fault(self, route: str, status: int, body: Mapping[str, Any] | None, times: int = 1) -> None:
        """The next ``times`` requests to ``route`` answer ``status`` with ``body``."""
        if route not in ROUTE_NAMES:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTE_NAMES}")
        if times <= 0:
            self._faults.pop(route, None)
        else:
            self._faults[route] = _Fault(status, dict(body) if body is not None else None, times)

    def _enter(self, route: str) -> web.Response | None:
        self.stats[route] += 1
        fault = self._faults.get(route)
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.remaining <= 0:
            del self._faults[route]
        return (
            json_response(fault.body, fault.status)
            if fault.body is not None
            else empty_response(fault.status)
        )

    def build(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(
            middlewares=[self._middleware], client_max_size=self.config.limits.max_body_bytes
        )
        r = app.router
        a = P + "/app/{app_id}"
        r.add_get(a + "/location", self.location)
        r.add_post(a + "/auth/providers/{provider}/login", self.login)
        r.add_post(
            a + "/auth/providers/{provider}/{action:(register|confirm|confirm/send|confirm/call|reset"
            "|reset/send|reset/call)}",
            self.userpass,
        )
        r.add_post(P + "/auth/session", self.refresh)
        r.add_delete(P + "/auth/session", self.logout)
        r.add_get(P + "/auth/profile", self.profile)
        r.add_delete(P + "/auth/delete", self.delete_user)
        r.add_post(P + "/auth/api_keys", self.create_api_key)
        r.add_get(P + "/auth/api_keys", self.list_api_keys)
        r.add_get(P + "/auth/api_keys/{key_id}", self.get_api_key)
        r.add_delete(P + "/auth/api_keys/{key_id}", self.delete_api_key)
        r.add_put(P + "/auth/api_keys/{key_id}/{toggle:(enable|disable)}", self.toggle_api_key)
        r.add_post(a + "/functions/call", self.function_call)
        r.add_get(a + "/functions/call", self.stream)
        if self._admin_token is not None:
            r.add_post("/_appusers/admin/revoke_access_tokens", self.admin_revoke_access)
            r.add_post("/_appusers/admin/revoke_sessions", self.admin_revoke_sessions)
            r.add_post("/_appusers/admin/fault", self.admin_fault)
            r.add_get("/_appusers/admin/outbox", self.admin_outbox)
            r.add_get("/_appusers/admin/stats", self.admin_stats)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "OPTIONS":
            resp: web.StreamResponse = empty_response(204)
            resp.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
            resp.headers["Access-Control-Allow-Headers"] = request.headers.get(
                "Access-Control-Request-Headers", _CORS_HEADERS
            )
            resp.headers["Access-Control-Max-Age"] = "600"
            finish_headers(request, resp)
            return resp
        try:
            resp = await handler(request)
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
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            resp = error_response(ApiError(500, "InternalServerError", "internal server error"))
        finish_headers(request, resp)
        return resp

    async def _body(self, request: web.Request) -> dict[str, Any]:
        """The request body as an EJSON object (canonical or relaxed); ``{}`` when empty."""
        raw = await request.read()  # raises HTTPRequestEntityTooLarge over the limit
        if not raw.strip():
            return {}
        try:
            value = _ejson.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError.bad_request("invalid JSON in request body") from None
        if not isinstance(value, dict):
            raise ApiError.bad_request("request body must be a JSON object")
        return value

    def _check_app(self, request: web.Request) -> None:
        if request.match_info.get("app_id") != self.config.app_id:
            raise ApiError(
                404,
                "AppNotFound",
                f"cannot find app using Client App ID {request.match_info.get('app_id', '')!r}",
            )

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
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

    async def _access(self, request: web.Request, token: str | None = None) -> tuple[TokenClaims, UserRecord]:
        """Verify an access token: signature, kind, expiry, user, generation and session."""
        token = token if token is not None else self._bearer(request)
        if token is None:
            raise ApiError.must_authenticate()
        claims = self.issuer.verify(token, "access")
        user = await self.store.get_user(claims.user_id)
        if user is None or user.generation != claims.generation:
            raise ApiError.invalid_session("invalid session: access token revoked")
        session = await self.store.get_session(claims.session_id)
        if session is None or session.user_id != user.id:
            raise ApiError.invalid_session("invalid session: session revoked")
        if user.disabled:
            raise ApiError(401, "UserDisabled", "user disabled")
        return claims, user

    async def _refresh_session(
        self, request: web.Request, missing: str = "invalid session: failed to find refresh token"
    ) -> tuple[SessionRecord, UserRecord]:
        """Verify a refresh token against its stored digest."""
        token = self._bearer(request)
        if token is None:
            raise ApiError.must_authenticate()
        claims = self.issuer.verify(token, "refresh", not_found=missing)
        session = await self.store.get_session(claims.session_id)
        if session is None or not hmac.compare_digest(session.refresh_digest, digest(token)):
            raise ApiError.invalid_session(missing)
        if session.expires_at < time.time():
            await self.store.delete_session(session.id)
            raise ApiError.invalid_session("invalid session: refresh token expired")
        user = await self.store.get_user(session.user_id)
        if user is None:
            raise ApiError.invalid_session(missing)
        return session, user

    async def _custom_data(self, user_id: str) -> dict[str, Any] | None:
        settings = self.config.custom_data
        if not settings.enabled:
            return None
        try:
            coll = self.documents.collection(settings.database, settings.collection)
            doc = await coll.find_one({settings.user_id_field: user_id})
        except store_errors() as exc:
            log.warning("custom user data lookup failed: %s", type(exc).__name__)
            return {}
        return {} if doc is None else dict(_ejson.to_claim(doc))

    async def _access_token(self, user: UserRecord, session: SessionRecord) -> str:
        return self.issuer.access_token(
            user_id=user.id,
            session_id=session.id,
            device_id=session.device_id,
            generation=user.generation,
            user_data=await self._custom_data(user.id),
        )

    async def _function_user(self, user: UserRecord) -> FunctionUser:
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
            custom_data=_ejson.loads(json.dumps(await self._custom_data(user.id) or {})),
        )

    # ------------------------------------------------------------------ location
    async def location(self, request: web.Request) -> web.StreamResponse:
        """#1 hostname discovery."""
        if (fault := self._enter("location")) is not None:
            return fault
        self._check_app(request)
        url = self._url()
        ws = "ws" + url[len("http") :]
        return json_response(
            {
                "deployment_model": "GLOBAL",
                "location": "local",
                "hostname": url,
                "ws_hostname": ws,
                "sync_route": f"{ws}{P}/app/{self.config.app_id}/realm-sync",
            }
        )

    # ------------------------------------------------------------------ login & link
    async def login(self, request: web.Request) -> web.StreamResponse:
        """#2 login, and #2b link with ``?link=true``."""
        linking = request.query.get("link", "").lower() == "true"
        if (fault := self._enter("link" if linking else "login")) is not None:
            return fault
        self._check_app(request)
        provider = request.match_info["provider"]
        linked: tuple[TokenClaims, UserRecord] | None = None
        if linking:
            linked = await self._access(request)
        body = await self._body(request)
        resolved = await self.providers.resolve(provider, body, request.remote or "unknown")
        if linked is not None:
            return await self._link(linked, resolved)
        user = await self._user_for(resolved)
        if user.disabled:
            raise ApiError(401, "UserDisabled", "user disabled")
        device_id = _device_id(body)
        refresh_session_id = new_object_id()
        refresh, expires = self.issuer.refresh_token(
            user_id=user.id, session_id=refresh_session_id, device_id=device_id
        )
        session = SessionRecord(
            id=refresh_session_id,
            user_id=user.id,
            device_id=device_id,
            refresh_digest=digest(refresh),
            expires_at=expires,
        )
        await self.store.create_session(session)
        return json_response(
            {
                "access_token": await self._access_token(user, session),
                "refresh_token": refresh,
                "user_id": user.id,
                "device_id": device_id,
            }
        )

    async def _user_for(self, resolved: Resolved) -> UserRecord:
        identity = resolved.identity
        owner = resolved.owner or await self.store.find_identity_owner(identity.provider_type, identity.id)
        if owner is None:
            try:
                return await self.store.create_user(resolved.user_type, _clean_data(resolved.data), identity)
            except DuplicateError:  # a concurrent first login created it meanwhile
                owner = await self.store.find_identity_owner(identity.provider_type, identity.id)
                if owner is None:
                    raise ApiError(409, "AccountNameInUse", "identity already exists") from None
        if (
            resolved.owner is not None
            and await self.store.find_identity_owner(identity.provider_type, identity.id) is None
        ):
            await self.store.add_identity(owner, identity)
        else:
            await self.store.update_identity_data(identity.provider_type, identity.id, identity.provider_data)
        user = await self.store.get_user(owner)
        if user is None:
            raise ApiError.unauthorized_login()
        return await self._merge_data(user, resolved.data)

    async def _merge_data(self, user: UserRecord, data: Mapping[str, str]) -> UserRecord:
        merged = {**user.data, **_clean_data(data)}
        if merged != dict(user.data):
            await self.store.set_user_data(user.id, merged)
            user = attrs.evolve(user, data=merged)
        return user

    async def _link(self, linked: tuple[TokenClaims, UserRecord], resolved: Resolved) -> web.Response:
        claims, user = linked
        identity = resolved.identity
        if identity.provider_type == "anon-user":
            raise ApiError.bad_request("cannot link an anonymous identity to an existing user")
        owner = resolved.owner or await self.store.find_identity_owner(identity.provider_type, identity.id)
        if owner is not None and owner != user.id:
            raise ApiError(
                409, "AccountNameInUse", "a user already exists with the specified provider identity"
            )
        if await self.store.find_identity_owner(identity.provider_type, identity.id) is None:
            try:
                await self.store.add_identity(user.id, identity)
            except DuplicateError:
                raise ApiError(
                    409, "AccountNameInUse", "a user already exists with the specified provider identity"
                ) from None
        user = await self._merge_data(user, resolved.data)
        session = await self.store.get_session(claims.session_id)
        if session is None:
            raise ApiError.invalid_session("invalid session: session revoked")
        return json_response(
            {
                "access_token": await self._access_token(user, session),
                "user_id": user.id,
                "device_id": session.device_id,
            }
        )

    # ------------------------------------------------------------------ session
    async def refresh(self, request: web.Request) -> web.StreamResponse:
        """#4 new access token for a refresh token (never rotated)."""
        if (fault := self._enter("refresh")) is not None:
            return fault
        session, user = await self._refresh_session(request, "invalid session: invalid refresh token")
        if user.disabled:
            raise ApiError(401, "UserDisabled", "user disabled")
        return json_response({"access_token": await self._access_token(user, session)}, 201)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """#5 revoke the refresh token's session."""
        if (fault := self._enter("logout")) is not None:
            return fault
        try:
            session, _user = await self._refresh_session(request)
        except ApiError as err:
            if err.code == "MissingAuthReq":
                raise
            # Clients look for this phrase to treat "already logged out" as success.
            raise ApiError.invalid_session("invalid session: failed to find refresh token") from None
        await self.store.delete_session(session.id)
        return empty_response(204)

    async def profile(self, request: web.Request) -> web.StreamResponse:
        """#6 user profile."""
        if (fault := self._enter("profile")) is not None:
            return fault
        _claims, user = await self._access(request)
        return json_response(self._profile_body(user))

    def _profile_body(self, user: UserRecord) -> dict[str, Any]:
        identities = []
        for i in user.identities:
            entry: dict[str, Any] = {
                "id": i.id,
                "provider_type": i.provider_type,
                "provider_id": i.provider_id,
            }
            if i.provider_data:
                entry["provider_data"] = dict(i.provider_data)
            identities.append(entry)
        return {
            "user_id": user.id,
            "domain_id": _domain_id(self.config.app_id),
            "type": user.type,
            "identities": identities,
            "data": dict(user.data),
        }

    async def delete_user(self, request: web.Request) -> web.StreamResponse:
        """#7 delete the calling user and everything it owns (custom data documents stay)."""
        if (fault := self._enter("delete")) is not None:
            return fault
        _claims, user = await self._access(request)
        await self.store.delete_user(user.id)
        return empty_response(204)

    # ------------------------------------------------------------------ API keys
    @staticmethod
    def _key_body(key: ApiKeyRecord, secret: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"_id": key.id, "name": key.name, "disabled": key.disabled}
        if secret is not None:
            body["key"] = secret
        return body

    async def _owned_key(self, request: web.Request, user: UserRecord) -> ApiKeyRecord:
        key_id = request.match_info["key_id"]
        key = await self.store.get_api_key(key_id)
        if key is None or key.user_id != user.id:
            raise ApiError(404, "APIKeyNotFound", "API key not found")
        return key

    async def _api_key_user(self, request: web.Request) -> UserRecord:
        if self.config.providers.api_key is None:
            raise ApiError(404, "AuthProviderNotFound", "authentication provider 'api-key' not found")
        _session, user = await self._refresh_session(request, "invalid session: invalid refresh token")
        return user

    async def create_api_key(self, request: web.Request) -> web.StreamResponse:
        """#8 create a key; the secret is in this response only."""
        if (fault := self._enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        body = await self._body(request)
        name = body.get("name")
        if name is None:
            raise ApiError.missing_parameter("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise ApiError.invalid_parameter(
                "API key name must be a non-empty string of at most 256 characters"
            )
        secret = new_secret(48)
        key = ApiKeyRecord(
            id=new_object_id(),
            user_id=user.id,
            name=name,
            key_digest=digest(secret),
            disabled=False,
            created=int(time.time()),
        )
        try:
            await self.store.create_api_key(key)
        except DuplicateError:
            raise ApiError(409, "APIKeyAlreadyExists", f"API key with name {name!r} already exists") from None
        return json_response(self._key_body(key, secret), 201)

    async def list_api_keys(self, request: web.Request) -> web.StreamResponse:
        """#9 the caller's keys, without secrets."""
        if (fault := self._enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        return json_response([self._key_body(k) for k in await self.store.list_api_keys(user.id)])

    async def get_api_key(self, request: web.Request) -> web.StreamResponse:
        """#10 one key."""
        if (fault := self._enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        return json_response(self._key_body(await self._owned_key(request, user)))

    async def delete_api_key(self, request: web.Request) -> web.StreamResponse:
        """#11 delete a key."""
        if (fault := self._enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        key = await self._owned_key(request, user)
        await self.store.delete_api_key(key.id)
        return empty_response(204)

    async def toggle_api_key(self, request: web.Request) -> web.StreamResponse:
        """#12/#13 enable or disable a key."""
        if (fault := self._enter("api_keys")) is not None:
            return fault
        user = await self._api_key_user(request)
        key = await self._owned_key(request, user)
        await self.store.set_api_key_disabled(key.id, request.match_info["toggle"] == "disable")
        return empty_response(204)

    # ------------------------------------------------------------------ email/password
    async def userpass(self, request: web.Request) -> web.StreamResponse:
        """#14-#20 the email/password provider actions (an Authorization header is ignored)."""
        if (fault := self._enter("userpass")) is not None:
            return fault
        self._check_app(request)
        provider = request.match_info["provider"]
        settings = self.config.providers.local_userpass
        if provider != "local-userpass" or settings is None:
            raise ApiError(404, "AuthProviderNotFound", f"authentication provider {provider!r} not found")
        body = await self._body(request)
        action = request.match_info["action"]
        await self.email_password.handle(action, body)
        return empty_response(201 if action == "register" else 204)

    # ------------------------------------------------------------------ functions
    async def function_call(self, request: web.Request) -> web.StreamResponse:
        """#21 user functions and MongoDB service functions."""
        if (fault := self._enter("function_call")) is not None:
            return fault
        self._check_app(request)
        _claims, user = await self._access(request)
        body = await self._body(request)
        result = await self._dispatch(body, user)
        try:
            return json_response(result)
        except Exception:  # an un-encodable return value is the function's fault
            raise ApiError(
                400, "FunctionExecutionError", "function returned a value that cannot be encoded as EJSON"
            ) from None

    async def _dispatch(self, body: Mapping[str, Any], user: UserRecord) -> Any:
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
            if service not in self.config.mongo_services:
                raise ApiError(404, "ServiceNotFound", f"service not found: {service!r}")
            return await call_mongo(self.documents, name, arguments)
        result = await self.registry.invoke(name, self.context(await self._function_user(user)), arguments)
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
        if (fault := self._enter("stream")) is not None:
            return fault
        self._check_app(request)
        header_token = self._bearer(request)
        _claims, user = await self._access(request, header_token or request.query.get("baas_at") or None)
        call = decode_baas_request(request.query.get("baas_request"))
        service = call.get("service")
        if call.get("name") != "watch" or service not in self.config.mongo_services:
            if service is not None and service not in self.config.mongo_services:
                raise ApiError(404, "ServiceNotFound", f"service not found: {service!r}")
            raise ApiError(400, "InvalidParameter", "only the MongoDB 'watch' function can be streamed")
        arg = parse_target(call.get("arguments"))
        ids = arg.get("ids")
        filter_ = arg.get("filter")
        if ids is not None and not isinstance(ids, list):
            raise ApiError.invalid_parameter("expected 'ids' to be an array")
        if filter_ is not None and not isinstance(filter_, Mapping):
            raise ApiError.invalid_parameter("expected 'filter' to be an object")
        with self.watch_slots.hold(user.id):
            try:
                watcher = self.documents.collection(arg["database"], arg["collection"]).watch(
                    ids=ids, filter=dict(filter_) if filter_ is not None else None
                )
            except store_errors() as exc:
                raise ApiError(400, "MongoDBError", str(exc) or type(exc).__name__) from None
            return await serve_watch(request, watcher, self.streams)

    # ------------------------------------------------------------------ admin
    def _admin(self, request: web.Request) -> None:
        given = request.headers.get("X-Appusers-Admin", "")
        assert self._admin_token is not None
        if not hmac.compare_digest(given.encode(), self._admin_token.encode()):
            raise ApiError(403, "Forbidden", "admin token required")

    async def _admin_user_id(self, request: web.Request) -> str:
        self._admin(request)
        body = await self._body(request)
        user_id = body.get("user_id")
        if not isinstance(user_id, str):
            raise ApiError.missing_parameter("user_id")
        return user_id

    async def revoke_access_tokens(self, user_id: str) -> None:
        """Existing access tokens of the user stop working; refresh tokens still do."""
        await self.store.bump_generation(user_id)

    async def revoke_sessions(self, user_id: str) -> None:
        """Every session (refresh token, and so its access tokens) of the user ends."""
        await self.store.delete_sessions(user_id)
        await self.store.bump_generation(user_id)

    async def admin_revoke_access(self, request: web.Request) -> web.StreamResponse:
        """POST /_appusers/admin/revoke_access_tokens {"user_id"}."""
        await self.revoke_access_tokens(await self._admin_user_id(request))
        return empty_response(204)

    async def admin_revoke_sessions(self, request: web.Request) -> web.StreamResponse:
        """POST /_appusers/admin/revoke_sessions {"user_id"}."""
        await self.revoke_sessions(await self._admin_user_id(request))
        return empty_response(204)

    async def admin_fault(self, request: web.Request) -> web.StreamResponse:
        """POST /_appusers/admin/fault {"route","status","body","times"}."""
        self._admin(request)
        body = await self._body(request)
        route, status, times = body.get("route"), body.get("status"), body.get("times", 1)
        fault_body = body.get("body")
        if not isinstance(route, str) or route not in ROUTE_NAMES:
            raise ApiError.invalid_parameter(f"route must be one of {', '.join(ROUTE_NAMES)}")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ApiError.invalid_parameter("status must be an HTTP status code")
        if not isinstance(times, int) or (fault_body is not None and not isinstance(fault_body, Mapping)):
            raise ApiError.invalid_parameter("times must be an integer and body an object or null")
        self.inject_fault(route, status, fault_body, times)
        return empty_response(204)

    async def admin_outbox(self, request: web.Request) -> web.StreamResponse:
        """GET /_appusers/admin/outbox."""
        self._admin(request)
        return plain_json_response(self.outbox.read())

    async def admin_stats(self, request: web.Request) -> web.StreamResponse:
        """GET /_appusers/admin/stats."""
        self._admin(request)
        return plain_json_response(dict(self.stats))


def _device_id(body: Mapping[str, Any]) -> str:
    """The device id the client sent back (realm-web), else a new one."""
    options = body.get("options")
    device = options.get("device") if isinstance(options, Mapping) else None
    value = device.get("deviceId") if isinstance(device, Mapping) else None
    text = str(value) if value is not None else ""
    if len(text) == 24 and all(c in "0123456789abcdef" for c in text) and text != _ZERO_ID:
        return text
    return new_object_id()


def _clean_data(data: Mapping[str, Any]) -> dict[str, str]:
    """Profile data as strings (core's accessors expect strings for the standard keys)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str) else str(value)
    return out


def _domain_id(app_id: str) -> str:
    import hashlib

    return hashlib.sha256(f"domain/{app_id}".encode()).hexdigest()[:24]
