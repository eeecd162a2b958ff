"""Catch errors by kind: every error is an AppError; ServiceError carries the server's status and code."""

from appusers import App, AppError, Credentials
from appusers.errors import (
    ClientError,
    FunctionNotFoundError,
    InvalidArgumentError,
    ServiceError,
    TransportError,
    UserNotLoggedInError,
)


async def main(base_url: str, app_id: str) -> None:
    try:
        Credentials.email_password("ana@example.com", "")
    except InvalidArgumentError as exc:  # also a ValueError: rejected before any I/O
        assert isinstance(exc, ValueError) and isinstance(exc, AppError)

    async with App(app_id, base_url=base_url) as app:
        user = await app.log_in(Credentials.anonymous())
        try:
            await user.functions.no_such_function()
        except FunctionNotFoundError as exc:
            assert isinstance(exc, ServiceError)
            assert (exc.status, exc.error_code, exc.code) == (404, "FunctionNotFound", "FunctionNotFound")
            assert not exc.retryable

        await user.log_out()
        try:
            await user.functions.sum(1, 2)
        except UserNotLoggedInError as exc:  # a local precondition: nothing was sent
            assert isinstance(exc, ClientError)

    async with App(app_id, base_url="http://127.0.0.1:9") as unreachable:  # nothing listens there
        try:
            await unreachable.log_in(Credentials.anonymous())
        except TransportError as exc:  # no HTTP response at all; also an OSError
            assert isinstance(exc, OSError)
        else:
            raise AssertionError("port 9 answered")
