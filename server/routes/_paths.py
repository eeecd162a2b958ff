"""URL prefixes of the client API (``/api/client/v2.0``)."""

from __future__ import annotations

__all__ = ["APP", "CLIENT"]

#: Every client route lives under this prefix.
CLIENT = "/api/client/v2.0"
#: Routes that name the app (``{app_id}`` is checked against the configured client app id).
APP = CLIENT + "/app/{app_id}"
