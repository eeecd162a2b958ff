"""``app.email_password_auth``: register and manage email/password identities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _ejson
from ._credentials import _require_text
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._pipeline import Pipeline

__all__ = ["EmailPasswordAuth"]

_BASE = "/auth/providers/local-userpass"
#: Calls whose repetition only sends the same email again; registering, confirming and
#: resetting are not (a second try would fail, or run a custom function twice).
_REPEATABLE = frozenset({"confirm/send", "reset/send"})


class EmailPasswordAuth:
    """The email/password provider's account calls. None of them logs anybody in."""

    __slots__ = ("_owner", "_pipeline")

    def __init__(self, pipeline: Pipeline, owner: object) -> None:
        self._pipeline = pipeline
        self._owner = owner  # for repr only

    async def _post(self, action: str, body: dict[str, Any], timeout: float | None) -> None:
        try:
            payload = _ejson.dumps(body).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"arguments cannot be encoded as Extended JSON: {exc}") from None
        await self._pipeline.request("POST", f"{_BASE}/{action}", body=payload, timeout=timeout,
                                     idempotent=action in _REPEATABLE)

    async def register_user(self, email: str, password: str, *, timeout: float | None = None) -> None:
        """Create a pending (or, if the server auto-confirms, a confirmed) identity."""
        body = {"email": _require_text(email, "email"), "password": _require_text(password, "password")}
        await self._post("register", body, timeout)

    async def confirm_user(self, token: str, token_id: str, *, timeout: float | None = None) -> None:
        """Confirm with the ``token`` and ``token_id`` of the confirmation email."""
        body = {"token": _require_text(token, "token"), "tokenId": _require_text(token_id, "token_id")}
        await self._post("confirm", body, timeout)

    async def resend_confirmation_email(self, email: str, *, timeout: float | None = None) -> None:
        await self._post("confirm/send", {"email": _require_text(email, "email")}, timeout)

    async def retry_custom_confirmation(self, email: str, *, timeout: float | None = None) -> None:
        """Run the server's custom confirmation function again for ``email``."""
        await self._post("confirm/call", {"email": _require_text(email, "email")}, timeout)

    async def send_reset_password_email(self, email: str, *, timeout: float | None = None) -> None:
        await self._post("reset/send", {"email": _require_text(email, "email")}, timeout)

    async def reset_password(
        self, token: str, token_id: str, password: str, *, timeout: float | None = None
    ) -> None:
        """Set a new password with the ``token`` and ``token_id`` of the reset email."""
        body = {
            "password": _require_text(password, "password"),
            "token": _require_text(token, "token"),
            "tokenId": _require_text(token_id, "token_id"),
        }
        await self._post("reset", body, timeout)

    async def call_reset_password_function(
        self, email: str, password: str, *args: Any, timeout: float | None = None
    ) -> None:
        """Reset through the server's custom reset function, which receives ``args``."""
        body = {
            "email": _require_text(email, "email"),
            "password": _require_text(password, "password"),
            "arguments": list(args),
        }
        await self._post("reset/call", body, timeout)

    def __repr__(self) -> str:
        return f"<EmailPasswordAuth of {self._owner!r}>"

