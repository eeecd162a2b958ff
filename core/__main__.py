"""``python -m appusers``: the ``appusers`` command (``appusers.cli``)."""

from __future__ import annotations

import sys

from appusers.cli import main

if __name__ == "__main__":
    sys.exit(main())
