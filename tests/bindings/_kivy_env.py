"""Make Kivy importable headless in tests: no argv parsing, no console log, a private KIVY_HOME.

Imported before the first ``import kivy`` of a test module. In CI (``CI=true``) a
missing Kivy is an error, elsewhere the module is skipped with the reason.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest


def import_kivy_or_skip() -> None:
    if "KIVY_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="appusers-kivy-home-")
        atexit.register(shutil.rmtree, home, True)
        os.environ["KIVY_HOME"] = home
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    # Kivy's own log mode rewires the root logger; PYTHON mode leaves logging to pytest.
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    os.environ.setdefault("KIVY_EVENTLOOP", "asyncio")
    # No window provider: a test that touched Kivy's Window by mistake fails instead of opening one.
    os.environ.setdefault("KIVY_WINDOW", "")
    try:
        import kivy  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"kivy cannot be imported ({exc}); install appusers[kivy]", allow_module_level=True)
