"""``user.functions.name(*args)``: backend functions as attributes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._pipeline import Principal

__all__ = ["Functions"]


class Functions:
    """Attribute access to a user's backend functions: ``await user.functions.sum(1, 2)``."""

    __slots__ = ("_user",)

    def __init__(self, user: Principal) -> None:
        self._user = user

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("__"):
            raise AttributeError(name)
        user = self._user

        async def call(*args: Any, timeout: float | None = None) -> Any:
            return await user._pipeline.call_function(user, name, args, timeout=timeout)

        call.__name__ = name
        call.__qualname__ = f"functions.{name}"
        return call

    def __getitem__(self, name: str) -> Callable[..., Awaitable[Any]]:
        """For names that are not identifiers: ``user.functions["my-fn"](...)``."""
        return self.__getattr__(name)

    def __repr__(self) -> str:
        return f"<Functions of {self._user!r}>"
