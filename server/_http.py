"""HTTP response conventions shared by every handler (protocol.md §2.5, §3.1, §15).

JSON bodies carry exactly ``Content-Type: application/json`` (core compares the
whole header value); empty bodies carry no content type; every response gets CORS
headers and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import _ejson
from ._errors import ApiError

__all__ = [
    "JSON_CT",
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


def cors(request: web.Request, headers: Any) -> None:
    """CORS headers so a browser client can call the server."""
    origin = request.headers.get("Origin")
    if origin:
        # Reflecting the origin (with credentials) is what realm-web's OAuth link
        # flow needs; the server only listens on loopback by default.
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        headers["Vary"] = "Origin"
    else:
        headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Expose-Headers"] = "X-BAAS-Location, Retry-After"


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
