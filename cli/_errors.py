"""Exit codes of the ``appusers`` command and the one place errors are mapped to them.

Scripts branch on the exit code, so every failure falls in exactly one class:
what the caller got wrong (2), who the caller is (3), the network (4), the
server (5), a throttled request (6), an app id the server does not know (7),
a part of appusers that is not installed (8), and the rest (1).
"""

from __future__ import annotations

import enum

from appusers.errors import (
    InvalidArgumentError,
    InvalidPasswordError,
    InvalidSessionError,
    MissingAuthError,
    ResponseError,
    ServiceError,
    TransportError,
    UserDisabledError,
    UserNotFoundError,
    UserNotLoggedInError,
)

__all__ = ["EXIT_CODES_HELP", "CliError", "ExitCode", "exit_code_for"]


class ExitCode(enum.IntEnum):
    """The process exit status of ``appusers``."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    AUTH = 3
    NETWORK = 4
    SERVER = 5
    THROTTLED = 6
    UNKNOWN_APP = 7
    NOT_INSTALLED = 8
    INTERRUPTED = 130  # the shell convention for SIGINT (128 + 2)


EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    unexpected error (add --debug for a traceback)
  2    bad input or usage: unknown option or command, invalid JSON argument,
       unknown user id, unknown API key id or function name, API key name taken,
       a malformed email or password, a wrong or used confirmation/reset token
  3    authentication failure: wrong password, key or token, session expired or
       revoked, user disabled, nobody logged in (any HTTP 401)
  4    network failure: server unreachable, connection reset, timeout
  5    server error: any other error the server answered with, or a response
       that cannot be used
  6    throttled: the server asks to wait (HTTP 429); the message says how long
  7    unknown app id: the server has no app with this id (check --app-id)
  8    not installed: the command needs an extra, e.g. pip install "appusers[server]"
  130  interrupted (Ctrl-C)"""


class CliError(Exception):
    """A failure the command reports as ``message`` on stderr, exiting with ``exit_code``."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# Server answers that mean the caller named something that does not exist or clashes:
# matched on the wire code, so a code without its own error class still counts.
_BAD_INPUT_CODES = frozenset({
    "APIKeyNotFound", "APIKeyAlreadyExists", "FunctionNotFound",
    # register / confirm / reset: a malformed address or password, a wrong or used token.
    "BadRequest", "InvalidParameter", "MissingParameter", "UserpassTokenInvalid",
    "UserAlreadyConfirmed", "AccountNameInUse",
})

# Checked in order: the subclasses that mean "bad input" or "bad credentials" come
# before the ServiceError they derive from.
_BY_TYPE: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (InvalidArgumentError, ExitCode.USAGE),
    (UserNotFoundError, ExitCode.USAGE),
    (UserNotLoggedInError, ExitCode.AUTH),
    (InvalidPasswordError, ExitCode.AUTH),
    (InvalidSessionError, ExitCode.AUTH),  # includes RefreshTokenRejectedError
    (MissingAuthError, ExitCode.AUTH),
    (UserDisabledError, ExitCode.AUTH),
    (TransportError, ExitCode.NETWORK),  # includes RequestTimeoutError
    (ServiceError, ExitCode.SERVER),
    (ResponseError, ExitCode.SERVER),
)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code ``exc`` ends the command with."""
    if isinstance(exc, CliError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, ServiceError):
        if exc.error_code in _BAD_INPUT_CODES:
            return ExitCode.USAGE
        if exc.status == 429:
            return ExitCode.THROTTLED
        if exc.error_code == "AppNotFound":
            return ExitCode.UNKNOWN_APP
    for kind, code in _BY_TYPE:
        if isinstance(exc, kind):
            if code is ExitCode.SERVER and isinstance(exc, ServiceError) and exc.status == 401:
                return ExitCode.AUTH  # e.g. a provider's own "AuthError": refused credentials
            return code
    return ExitCode.UNEXPECTED

