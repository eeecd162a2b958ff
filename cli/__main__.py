"""``python -m appusers.cli``: the same as ``appusers``."""

import sys

from ._main import main

sys.exit(main())
