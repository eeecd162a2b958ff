"""Small helpers for the core tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from appusers import App, Credentials, User, UserState
from appusers._models import Identity, Profile
from appusers._records import Keys, UserRecord, dump_user
from appusers.errors import TransportError
from appusers.transport import Request, Response, Transport


async def register_confirmed(app: App, server: Any, email: str, password: str = "s3cret-pass") -> None:
    """Register ``email`` and confirm it with the token the server put in its outbox."""
    await app.email_password_auth.register_user(email, password)
    mail = [m for m in server.read_outbox() if m["email"] == email and m["kind"] == "confirm"][-1]
    await app.email_password_auth.confirm_user(mail["token"], mail["tokenId"])


async def email_user(app: App, server: Any, email: str, password: str = "s3cret-pass") -> User:
    await register_confirmed(app, server, email, password)
    return await app.log_in(Credentials.email_password(email, password))


class HookTransport:
    """Wraps a real transport; ``hook(request)`` may wait, raise, or return a response instead."""

    def __init__(self, inner: Transport, hook: Callable[[Request], Awaitable[Response | None]]) -> None:
        self.inner = inner
        self.hook = hook
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        replaced = await self.hook(request)
        if replaced is not None:
            return replaced
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def offline(request: Request) -> Response:
    raise TransportError("connection refused (simulated)", method=request.method, url=request.url)


#: The storage keys of the app id ``"app"`` (the restore tests' app).
KEYS = Keys.for_app("app")
#: A token-shaped string: the records only need one that splits like a JWT.
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def stored_user_record(user_id: str, state: UserState = UserState.LOGGED_IN, **changes: Any) -> str:
    """A user's record as the SDK stores it: an email/password user, logged in unless ``state`` says."""
    logged_in = state is UserState.LOGGED_IN
    fields: dict[str, Any] = {
        "id": user_id, "state": state, "access_token": TOKEN if logged_in else None,
        "refresh_token": TOKEN if logged_in else None, "device_id": "d" * 24,
        "identities": (Identity(f"i-{user_id}", "local-userpass"),),
        "profile": Profile({"email": f"{user_id}@example.com"}), "provider_type": "local-userpass",
        "last_used": 1_700_000_000.25,
    }
    fields.update(changes)
    return dump_user(UserRecord(**fields))
