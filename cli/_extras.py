"""Parts of ``appusers`` that need an extra: a clear message instead of an ImportError.

``pip install appusers`` gives the client and this command; the local server
(``serve``, ``demo``, ``config check``) needs ``appusers[server]``.
"""

from __future__ import annotations

import importlib.util

from ._errors import CliError, ExitCode

__all__ = ["SERVER_MODULES", "require_server"]

#: Import names of the ``server`` extra's distributions (see pyproject.toml).
SERVER_MODULES = {"jwt": "pyjwt[crypto]", "mongomock": "mongomock", "re2": "google-re2"}


def require_server() -> None:
    """Raise a :class:`CliError` (exit 8) naming ``pip install "appusers[server]"`` if the
    server extra is not installed."""
    missing = [dist for module, dist in SERVER_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise CliError(
            f'the local server needs the server extra: pip install "appusers[server]" '
            f"(missing: {', '.join(missing)})",
            ExitCode.NOT_INSTALLED,
        )
