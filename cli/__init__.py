"""The ``appusers`` command line: sessions kept between runs, the local server, its Admin API.

Built on click (subcommands, ``--help``, shell completion); see docs/cli.md.
"""

from __future__ import annotations

from ._errors import ExitCode
from ._main import main

__all__ = ["ExitCode", "main"]
