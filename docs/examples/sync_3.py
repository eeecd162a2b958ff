"""A WSGI app: one blocking App shared by every request thread."""

import asyncio
import json
import threading
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from appusers import Credentials
from appusers.adapters import MemoryStorage
from appusers.sync import App


def make_wsgi_app(app: App) -> Callable[..., Iterable[bytes]]:
    user = app.log_in(Credentials.anonymous())  # the service's own user, logged in once

    def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        numbers = [int(n) for n in query.get("n", [])]
        total = user.functions.sum(*numbers)  # blocks this request's thread only
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"sum": total}).encode()]

    return wsgi_app


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_and_ask(base_url: str, app_id: str) -> list[int]:
    with App(app_id, base_url=base_url, storage=MemoryStorage()) as app:
        server = make_server("127.0.0.1", 0, make_wsgi_app(app), ThreadingWSGIServer, QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_port}/?n="

            def ask(i: int) -> int:
                with urllib.request.urlopen(f"{url}{i}&n={i}", timeout=30) as reply:  # noqa: S310
                    return int(json.load(reply)["sum"])

            with ThreadPoolExecutor(8) as pool:  # eight requests at once
                return list(pool.map(ask, range(16)))
        finally:
            server.shutdown()
            server.server_close()


async def main(base_url: str, app_id: str) -> None:
    assert await asyncio.to_thread(serve_and_ask, base_url, app_id) == [2 * i for i in range(16)]
