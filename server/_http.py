"""HTTP response conventions shared by every handler (what realm-web and core expect of App Services).

JSON bodies carry exactly ``Content-Type: application/json`` (core compares the
whole header value); empty bodies carry no content type; every response gets CORS
headers and ``Cache-Control: no-store``.

CORS (reliability.md S22): origins come from ``[http] allowed_origins``; ``"*"`` (the default)
answers ``Access-Control-Allow-Origin: *``. Credentials are never allowed: tokens travel in
the ``Authorization`` header, not in cookies, so a browser needs no credentialed request, and
an echoed origin with ``Allow-Credentials: true`` would let any site read responses made with
the visitor's cookies. Preflights allow only the headers and methods the protocol uses.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import _ejson
from ._errors import ApiError

__all__ = [
    "CORS",
    "JSON_CT",
    "Cors",
    "cors",
    "empty_response",
    "error_response",
    "finish_headers",
    "json_response",
    "plain_json_response",
]

JSON_CT = "application/json"


def json_response(data: Any, status: int = 200) -> web.Response:
    """A canonical-EJSON body with the exact content type clients compare against."""
    return web.Response(
        status=status, body=_ejson.dumps(data).encode("utf-8"), headers={"Content-Type": JSON_CT}
    )


def empty_response(status: int = 204) -> web.Response:
    """No body, no content type."""
    return web.Response(status=status)


def error_response(err: ApiError) -> web.Response:
    """The App Services error body."""
    resp = json_response(err.body(), err.status)
    resp.headers.update(err.headers)
    return resp


class Cors:
    """CORS answers for the configured origins (never with credentials)."""

    HEADERS = "Authorization, Content-Type, Accept"
    METHODS = "GET, POST, PUT, DELETE"

    def __init__(self, allowed_origins: tuple[str, ...]):
        self._any = "*" in allowed_origins
        self._origins = frozenset(o for o in allowed_origins if o != "*")

    def apply(self, request: web.BaseRequest, headers: Any) -> None:
        """``Access-Control-*`` response headers for ``request``'s origin."""
        if self._any:
            headers["Access-Control-Allow-Origin"] = "*"
        else:
            headers["Vary"] = "Origin"
            origin = request.headers.get("Origin")
            if origin is None or origin.rstrip("/") not in self._origins:
                return  # no grant: the browser withholds the response from the page
            headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = "X-BAAS-Location, Retry-After"

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to an ``OPTIONS`` preflight."""
        resp = empty_response(204)
        resp.headers["Access-Control-Allow-Methods"] = self.METHODS
        resp.headers["Access-Control-Allow-Headers"] = self.HEADERS
        resp.headers["Access-Control-Max-Age"] = "600"
        finish_headers(request, resp)
        return resp


#: The application's :class:`Cors` (set when the server builds its aiohttp application).
CORS = web.AppKey("appusers_cors", Cors)
_ANY_ORIGIN = Cors(("*",))


def cors(request: web.Request, headers: Any) -> None:
    """CORS headers for ``request`` as its application is configured."""
    request.app.get(CORS, _ANY_ORIGIN).apply(request, headers)


def finish_headers(request: web.Request, resp: web.StreamResponse) -> None:
    """CORS, no-store and nosniff on every response that has not been sent yet."""
    if resp.prepared:
        return
    cors(request, resp.headers)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"


def plain_json_response(data: Any, status: int = 200) -> web.Response:
    """Plain JSON (no EJSON wrappers), for the admin routes' counters and outbox."""
    return web.Response(
        status=status, body=json.dumps(data).encode("utf-8"), headers={"Content-Type": JSON_CT}
    )
