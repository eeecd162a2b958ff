"""The documentation builds with Sphinx, warnings as errors (this is CI's docs build).

How long the build takes is not asserted: a wall-clock bound in a unit test measures the machine's
load, not the docs (it failed at 89 s on a loaded 2-core machine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ._pages import DOCS, ROOT


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "html"
    # The documented command, with the output and the doctrees kept out of the tree.
    result = subprocess.run(  # fixed argv, our own interpreter
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"sphinx failed:\n{result.stderr[-6000:]}"
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr[-6000:]

    index = (out / "index.html").read_text(encoding="utf-8")
    for page in ("authenticate", "streams", "adapters", "server", "cli", "errors", "api"):
        assert f'href="{page}.html"' in index, f"{page} is not linked from the index"
    api = (out / "api.html").read_text(encoding="utf-8")
    # autodoc really ran (MyST would silently print reST source if the page were Markdown).
    for name in ("appusers.App", "appusers.User.state_changes", "appusers.errors.InvalidSessionError",
                 "appusers.adapters.FileStorage", "appusers.server.LocalServer"):
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"
    assert ".. py:" not in api
    # Examples are shown (literalinclude found its file), without their docstring, highlighted
    # ("default" is Sphinx's tolerant Python lexer).
    auth = (out / "authenticate.html").read_text(encoding="utf-8")
    assert auth.count('class="highlight-default') >= 8
    assert "reuse</span><span class=\"o\">=</span><span class=\"kc\">False" in auth
    assert "Anonymous log-in: a logged-in" not in auth
