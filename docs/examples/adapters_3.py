"""MockTransport answers from a function: test how your code handles server failures, without a server."""

import json

from appusers import App, Credentials, Request, Response
from appusers.adapters import MockTransport
from appusers.errors import MaintenanceError, TransportError


def handler(request: Request) -> Response:
    if request.url.endswith("/location"):
        body = {"hostname": "http://backend.test", "deployment_model": "GLOBAL", "location": "US-VA"}
        return Response(200, {"content-type": "application/json"}, json.dumps(body).encode())
    if "anon-user" in request.url:
        body = {"error": "down for maintenance", "error_code": "MaintenanceInProgress"}
        return Response(503, {"content-type": "application/json"}, json.dumps(body).encode())
    raise TransportError("connection refused")  # how a handler simulates a network failure


async def main() -> None:
    transport = MockTransport(handler)
    async with App("my-app", base_url="http://backend.test", transport=transport) as app:
        try:
            await app.log_in(Credentials.anonymous())
        except MaintenanceError as exc:
            assert exc.retryable and exc.status == 503
        else:
            raise AssertionError("expected the maintenance error")
        try:
            await app.log_in(Credentials.function({"username": "ana"}))
        except TransportError:
            pass
        else:
            raise AssertionError("expected the network failure")
    assert [r.method for r in transport.requests] == ["GET", "POST", "POST"]
