"""Every error appusers raises, under one root.

::

    AppError
    ├── InvalidArgumentError (ValueError)      bad input, rejected before any I/O
    ├── ClientError                           a local precondition failed
    │   ├── UserNotFoundError (LookupError)   ClientUserNotFound
    │   ├── UserNotLoggedInError              ClientUserNotLoggedIn
    │   └── UserAlreadyNamedError             ClientUserAlreadyNamed
    ├── AppClosedError                        the App was closed
    ├── TransportError (OSError)              no HTTP response: refused, reset, DNS, TLS
    │   └── RequestTimeoutError (TimeoutError)
    ├── ResponseError                         a response we cannot use
    │   ├── MalformedJsonError                MalformedJson
    │   ├── MissingJsonKeyError (KeyError)    MissingJsonKey
    │   └── BadTokenError                     BadToken: a token that is not a JWT
    ├── ServiceError                          the server answered with an error
    │   ├── HTTPStatusError                   non-2xx without an App Services error body
    │   ├── InvalidSessionError               InvalidSession (401)
    │   │   └── RefreshTokenRejectedError     the refresh token is dead: the user was logged out
    │   ├── MissingAuthError                  MissingAuthReq
    │   ├── InvalidPasswordError              InvalidPassword
    │   ├── UserDisabledError                 UserDisabled
    │   ├── AuthProviderNotFoundError         AuthProviderNotFound
    │   ├── AccountNameInUseError             AccountNameInUse
    │   ├── UserAlreadyConfirmedError         UserAlreadyConfirmed
    │   ├── ServiceUserNotFoundError          UserNotFound
    │   ├── UserpassTokenInvalidError         UserpassTokenInvalid
    │   ├── BadRequestError                   BadRequest
    │   ├── InvalidParameterError             InvalidParameter / MissingParameter
    │   ├── APIKeyNotFoundError               APIKeyNotFound
    │   ├── APIKeyAlreadyExistsError          APIKeyAlreadyExists
    │   ├── FunctionNotFoundError             FunctionNotFound
    │   ├── FunctionExecutionError            FunctionExecutionError
    │   ├── ServiceNotFoundError              ServiceNotFound / ServiceCommandNotFound
    │   ├── MongoDBError                      MongoDBError
    │   └── MaintenanceError                  MaintenanceInProgress
    └── StorageError                          the session store failed
        ├── StorageLockTimeoutError (TimeoutError)
        ├── CorruptStorageError               unreadable store (quarantined by FileStorage)
        ├── InsecureStorageError              a store directory other users can write to
        └── StorageKeyUnavailableError        no key for an encrypted store (no OS keyring)

Messages never contain tokens, passwords or API keys: servers echo request data
back in error text, so ``ServiceError`` keeps the server's message but the
transport never puts request headers or bodies into an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "APIKeyAlreadyExistsError",
    "APIKeyNotFoundError",
    "AccountNameInUseError",
    "AppClosedError",
    "AppError",
    "AuthProviderNotFoundError",
    "BadRequestError",
    "BadTokenError",
    "ClientError",
    "CorruptStorageError",
    "FunctionExecutionError",
    "FunctionNotFoundError",
    "HTTPStatusError",
    "InsecureStorageError",
    "InvalidArgumentError",
    "InvalidParameterError",
    "InvalidPasswordError",
    "InvalidSessionError",
    "MaintenanceError",
    "MalformedJsonError",
    "MissingAuthError",
    "MissingJsonKeyError",
    "MongoDBError",
    "RefreshTokenRejectedError",
    "RequestTimeoutError",
    "ResponseError",
    "ServiceError",
    "ServiceNotFoundError",
    "ServiceUserNotFoundError",
    "StorageError",
    "StorageKeyUnavailableError",
    "StorageLockTimeoutError",
    "TransportError",
    "UserAlreadyConfirmedError",
    "UserAlreadyNamedError",
    "UserDisabledError",
    "UserNotFoundError",
    "UserNotLoggedInError",
    "UserpassTokenInvalidError",
    "service_error_from_body",
]


class AppError(Exception):
    """Root of every appusers error.

    ``code`` is the realm-core error name (``"InvalidSession"``, ``"CustomError"`` ...)
    so code written against the other SDKs can switch on the same strings.
    """

    code: ClassVar[str] = "AppError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(AppError, ValueError):
    """An argument was rejected before anything was sent or stored."""

    code = "InvalidArgument"


class ClientError(AppError):
    """A local precondition failed (core's client error category)."""

    code = "ClientError"


class UserNotFoundError(ClientError, LookupError):
    code = "ClientUserNotFound"


class UserNotLoggedInError(ClientError):
    code = "ClientUserNotLoggedIn"


class UserAlreadyNamedError(ClientError):
    code = "ClientUserAlreadyNamed"


class AppClosedError(AppError):
    """The App was closed; open a new one."""

    code = "AppClosed"


class TransportError(AppError, OSError):
    """No HTTP response arrived (connection refused or reset, DNS, TLS...)."""

    code = "CustomError"

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class RequestTimeoutError(TransportError, TimeoutError):
    """The request did not finish within its timeout."""

    code = "CustomError"


class ResponseError(AppError):
    """The server answered 2xx with something we cannot use."""

    code = "InvalidServerResponse"


class MalformedJsonError(ResponseError):
    code = "MalformedJson"


class MissingJsonKeyError(ResponseError, KeyError):
    code = "MissingJsonKey"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class BadTokenError(ResponseError):
    code = "BadToken"


class ServiceError(AppError):
    """The server answered with an error.

    ``status`` is the HTTP status, ``error_code`` the raw ``error_code`` string of
    the body (``""`` when absent), ``link`` the server's log link.
    """

    code = "AppServerError"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        error_code: str = "",
        link: str = "",
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.link = link
        self.method = method
        self.url = url

    @property
    def retryable(self) -> bool:
        """True for failures that may go away on their own (5xx, maintenance)."""
        return self.status >= 500 or self.status in (408, 429)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status}, "
            f"error_code={self.error_code!r})"
        )


class HTTPStatusError(ServiceError):
    code = "HTTPError"


class InvalidSessionError(ServiceError):
    code = "InvalidSession"


class RefreshTokenRejectedError(InvalidSessionError):
    """The server rejected the refresh token; the user has been logged out."""

    code = "InvalidSession"


class MissingAuthError(ServiceError):
    code = "MissingAuthReq"


class InvalidPasswordError(ServiceError):
    code = "InvalidPassword"


class UserDisabledError(ServiceError):
    code = "UserDisabled"


class AuthProviderNotFoundError(ServiceError):
    code = "AuthProviderNotFound"


class AccountNameInUseError(ServiceError):
    code = "AccountNameInUse"


class UserAlreadyConfirmedError(ServiceError):
    code = "UserAlreadyConfirmed"


class ServiceUserNotFoundError(ServiceError):
    code = "UserNotFound"


class UserpassTokenInvalidError(ServiceError):
    code = "UserpassTokenInvalid"


class BadRequestError(ServiceError):
    code = "BadRequest"


class InvalidParameterError(ServiceError):
    code = "InvalidParameter"


class APIKeyNotFoundError(ServiceError):
    code = "APIKeyNotFound"


class APIKeyAlreadyExistsError(ServiceError):
    code = "APIKeyAlreadyExists"


class FunctionNotFoundError(ServiceError):
    code = "FunctionNotFound"


class FunctionExecutionError(ServiceError):
    code = "FunctionExecutionError"


class ServiceNotFoundError(ServiceError):
    code = "ServiceNotFound"


class MongoDBError(ServiceError):
    code = "MongoDBError"


class MaintenanceError(ServiceError):
    code = "MaintenanceInProgress"


class StorageError(AppError):
    """The session store could not be read or written."""

    code = "StorageError"


class StorageLockTimeoutError(StorageError, TimeoutError):
    code = "StorageLockTimeout"


class CorruptStorageError(StorageError):
    code = "CorruptStorage"


class InsecureStorageError(StorageError):
    """The store's directory (or file) can be written by other users, who could swap the tokens."""

    code = "InsecureStorage"


class StorageKeyUnavailableError(StorageError):
    """An encrypted storage has no key: no OS keyring is usable and the app passed none."""

    code = "StorageKeyUnavailable"


_BY_ERROR_CODE: Mapping[str, type[ServiceError]] = {
    "InvalidSession": InvalidSessionError,
    "MissingAuthReq": MissingAuthError,
    "InvalidPassword": InvalidPasswordError,
    "UserDisabled": UserDisabledError,
    "AuthProviderNotFound": AuthProviderNotFoundError,
    "AccountNameInUse": AccountNameInUseError,
    "UserAlreadyConfirmed": UserAlreadyConfirmedError,
    "UserNotFound": ServiceUserNotFoundError,
    "UserpassTokenInvalid": UserpassTokenInvalidError,
    "BadRequest": BadRequestError,
    "InvalidParameter": InvalidParameterError,
    "MissingParameter": InvalidParameterError,
    "APIKeyNotFound": APIKeyNotFoundError,
    "APIKeyAlreadyExists": APIKeyAlreadyExistsError,
    "FunctionNotFound": FunctionNotFoundError,
    "FunctionExecutionError": FunctionExecutionError,
    "ServiceNotFound": ServiceNotFoundError,
    "ServiceCommandNotFound": ServiceNotFoundError,
    "MongoDBError": MongoDBError,
    "MaintenanceInProgress": MaintenanceError,
}


def service_error_from_body(
    body: Any, *, status: int, method: str = "", url: str = ""
) -> ServiceError | None:
    """The typed error an App Services error body describes, or None if it describes none.

    Follows core's ``check_for_errors``: a non-empty string ``error_code`` picks the
    class; a string ``error`` alone gives a plain ``ServiceError``.
    """
    if not isinstance(body, Mapping):
        return None
    error_code = body.get("error_code")
    error = body.get("error")
    link = body.get("link")
    link = link if isinstance(link, str) else ""
    if isinstance(error_code, str) and error_code:
        cls = _BY_ERROR_CODE.get(error_code, ServiceError)
        message = error if isinstance(error, str) and error else "no error message"
        return cls(message, status=status, error_code=error_code, link=link, method=method, url=url)
    if isinstance(error, str):
        return ServiceError(error, status=status, error_code="", link=link, method=method, url=url)
    return None
