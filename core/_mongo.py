"""``user.mongo_client(service)``: the remote MongoDB service, through ``functions/call``.

Placeholder: the collection API is being written (issue 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._user import User

__all__ = ["MongoClient"]


class MongoClient:
    def __init__(self, user: User, service_name: str) -> None:
        self._user = user
        self.service_name = service_name
