"""``python -m appusers.server``: the same as ``appusers serve``."""

import sys

from ._cli import serve_main

sys.exit(serve_main(sys.argv[1:]))
