"""A transport is any object with send() and aclose(): wrap the default one to add behaviour."""

from appusers import App, Credentials, Request, Response, Transport
from appusers.adapters import AiohttpTransport


class CountingTransport:
    """Counts requests by method, then lets the default transport do the HTTP."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.counts: dict[str, int] = {}

    async def send(self, request: Request) -> Response:
        self.counts[request.method] = self.counts.get(request.method, 0) + 1
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def main(base_url: str, app_id: str) -> None:
    transport = CountingTransport(AiohttpTransport(timeout=10))
    assert isinstance(transport, Transport)  # a runtime-checkable Protocol
    async with App(app_id, base_url=base_url, transport=transport) as app:  # the App closes it
        user = await app.log_in(Credentials.anonymous())
        await user.functions.sum(1, 2)
    # location + profile are GETs; login + function call are POSTs.
    assert transport.counts == {"GET": 2, "POST": 2}
