"""The blocking twins of a user's and an App's services: functions, API keys, email/password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import appusers

from .._api_keys import ApiKey
from ._runner import Runner

__all__ = ["ApiKeys", "EmailPasswordAuth", "Functions"]


class Functions:
    """``user.functions.sum(1, 2)`` calls the backend function ``sum`` and returns its result."""

    __slots__ = ("_functions", "_runner")

    def __init__(self, runner: Runner, functions: appusers.Functions) -> None:
        self._runner = runner
        self._functions = functions

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        call_async = getattr(self._functions, name)
        runner = self._runner

        def call(*args: Any, timeout: float | None = None) -> Any:
            return runner.run(call_async(*args, timeout=timeout))

        call.__name__ = name
        call.__qualname__ = f"functions.{name}"
        return call

    def __getitem__(self, name: str) -> Callable[..., Any]:
        """For names that are not identifiers: ``user.functions["my-fn"](...)``."""
        return self.__getattr__(name)

    def __repr__(self) -> str:
        return repr(self._functions)


class ApiKeys:
    """Create, list, enable, disable and delete the user's API keys (blocking)."""

    __slots__ = ("_keys", "_runner")

    def __init__(self, runner: Runner, keys: appusers.ApiKeys) -> None:
        self._runner = runner
        self._keys = keys

    def create(self, name: str, *, timeout: float | None = None) -> ApiKey:
        """A new enabled key; its secret ``key`` is returned this once only."""
        return self._runner.run(self._keys.create(name, timeout=timeout))

    def fetch(self, key_id: str, *, timeout: float | None = None) -> ApiKey:
        return self._runner.run(self._keys.fetch(key_id, timeout=timeout))

    def fetch_all(self, *, timeout: float | None = None) -> list[ApiKey]:
        return self._runner.run(self._keys.fetch_all(timeout=timeout))

    def enable(self, key_id: str, *, timeout: float | None = None) -> None:
        self._runner.run(self._keys.enable(key_id, timeout=timeout))

    def disable(self, key_id: str, *, timeout: float | None = None) -> None:
        self._runner.run(self._keys.disable(key_id, timeout=timeout))

    def delete(self, key_id: str, *, timeout: float | None = None) -> None:
        self._runner.run(self._keys.delete(key_id, timeout=timeout))

    def __repr__(self) -> str:
        return repr(self._keys)


class EmailPasswordAuth:
    """The email/password provider's account calls (blocking). None of them logs anybody in."""

    __slots__ = ("_auth", "_runner")

    def __init__(self, runner: Runner, auth: appusers.EmailPasswordAuth) -> None:
        self._runner = runner
        self._auth = auth

    def register_user(self, email: str, password: str, *, timeout: float | None = None) -> None:
        """Create a pending (or, if the server auto-confirms, a confirmed) identity."""
        self._runner.run(self._auth.register_user(email, password, timeout=timeout))

    def confirm_user(self, token: str, token_id: str, *, timeout: float | None = None) -> None:
        """Confirm with the ``token`` and ``token_id`` of the confirmation email."""
        self._runner.run(self._auth.confirm_user(token, token_id, timeout=timeout))

    def resend_confirmation_email(self, email: str, *, timeout: float | None = None) -> None:
        self._runner.run(self._auth.resend_confirmation_email(email, timeout=timeout))

    def retry_custom_confirmation(self, email: str, *, timeout: float | None = None) -> None:
        """Run the server's custom confirmation function again for ``email``."""
        self._runner.run(self._auth.retry_custom_confirmation(email, timeout=timeout))

    def send_reset_password_email(self, email: str, *, timeout: float | None = None) -> None:
        self._runner.run(self._auth.send_reset_password_email(email, timeout=timeout))

    def reset_password(
        self, token: str, token_id: str, password: str, *, timeout: float | None = None
    ) -> None:
        """Set a new password with the ``token`` and ``token_id`` of the reset email."""
        self._runner.run(self._auth.reset_password(token, token_id, password, timeout=timeout))

    def call_reset_password_function(
        self, email: str, password: str, *args: Any, timeout: float | None = None
    ) -> None:
        """Reset through the server's custom reset function, which receives ``args``."""
        self._runner.run(self._auth.call_reset_password_function(email, password, *args, timeout=timeout))

    def __repr__(self) -> str:
        return repr(self._auth)
