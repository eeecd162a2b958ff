"""The App Services error body and the exception that carries it to the HTTP layer.

Handlers raise :class:`ApiError`; one middleware turns it into
``{"error", "error_code", "link"}`` with ``Content-Type: application/json``.
Messages are written for the caller and never include tokens, passwords or keys.
"""

from __future__ import annotations

__all__ = ["ERROR_LINK", "ApiError", "ConfigError"]

#: The real service points ``link`` at its log viewer; a local server has none,
#: so every error links to the same harmless placeholder.
ERROR_LINK = "http://127.0.0.1/appusers-local/logs"


class ApiError(Exception):
    """An App Services error reply: HTTP status, ``error_code`` and message."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        """The JSON error body."""
        return {"error": self.message, "error_code": self.code, "link": ERROR_LINK}

    # Shorthands for the errors every module needs; keeping status and code together
    # here stops two handlers from answering the same condition differently.
    @classmethod
    def invalid_session(cls, detail: str = "invalid session") -> ApiError:
        """401 InvalidSession: a bad, expired, revoked or wrong-kind token."""
        return cls(401, "InvalidSession", detail)

    @classmethod
    def user_disabled(cls) -> ApiError:
        """401 UserDisabled: an administrator disabled the user."""
        return cls(401, "UserDisabled", "user disabled")

    @classmethod
    def must_authenticate(cls) -> ApiError:
        """401 MissingAuthReq: the route needs a token and got none."""
        return cls(401, "MissingAuthReq", "must authenticate first")

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        """400 BadRequest."""
        return cls(400, "BadRequest", message)

    @classmethod
    def invalid_parameter(cls, message: str) -> ApiError:
        """400 InvalidParameter."""
        return cls(400, "InvalidParameter", message)

    @classmethod
    def missing_parameter(cls, name: str) -> ApiError:
        """400 MissingParameter naming the absent field."""
        return cls(400, "MissingParameter", f"expected parameter {name!r} to be present")

    @classmethod
    def unauthorized_login(cls, message: str = "unauthorized") -> ApiError:
        """401 InvalidPassword: unknown user or wrong secret (never says which)."""
        return cls(401, "InvalidPassword", message)


class ConfigError(ValueError):
    """The settings are unreadable or hold a setting of the wrong shape (the message says where)."""
