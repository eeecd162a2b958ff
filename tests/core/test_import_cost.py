"""What ``import appusers`` loads, and what it leaves to first use (issue 11: import <= 100 ms).

Not a timed test: these pin which heavy modules stay out of the import, so that a new
top-level ``import asyncio`` (or a module that pulls it in) fails here rather than
slipping into the figure benchmarks/run.py measures.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from appusers._lazy import lazy_logger, lazy_module

# Each is a few milliseconds or more of ``import appusers`` when imported up front; asyncio alone
# brings ssl, subprocess, socket, concurrent.futures and logging.
NOT_AT_IMPORT = (
    "asyncio", "ssl", "socket", "subprocess", "concurrent.futures", "logging", "transitions",
    "aiohttp", "reactivex", "bson", "sqlite3", "platformdirs", "portalocker", "cryptography",
    "keyring", "click", "PySide6", "PyQt5", "PyQt6", "kivy",
    "appusers.adapters", "appusers.server", "appusers.cli", "appusers.sync", "appusers._mongo",
    "appusers._api_keys", "appusers._email_password", "appusers._streams", "appusers._events",
)


def _fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON value as its last line."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_import_appusers_leaves_heavy_modules_to_first_use() -> None:
    result = _fresh(f"""
        import json, sys
        import appusers
        print(json.dumps({{"loaded": [m for m in {NOT_AT_IMPORT!r} if m in sys.modules]}}))
    """)
    assert result["loaded"] == []


def test_every_public_name_and_a_first_app_work_after_the_lean_import() -> None:
    result = _fresh("""
        import asyncio, json, sys
        import appusers
        from appusers.adapters import MemoryStorage

        missing = [name for name in appusers.__all__ if getattr(appusers, name, None) is None]
        app = appusers.App("app", base_url="http://127.0.0.1:1", storage=MemoryStorage())
        built = "transitions" in sys.modules
        policy = appusers.RetryPolicy()

        async def main():
            await app.open()
            await app.aclose()

        asyncio.run(main())
        print(json.dumps({"missing": missing, "built": built, "sleep": policy.sleep is asyncio.sleep}))
    """)
    assert result == {"missing": [], "built": True, "sleep": True}


def test_a_broken_transitions_install_fails_at_app_not_at_a_first_log_in() -> None:
    result = _fresh("""
        import json, sys
        import appusers
        from appusers.adapters import MemoryStorage

        sys.modules["transitions"] = None  # as if it were not installed
        try:
            appusers.App("app", base_url="http://127.0.0.1:1", storage=MemoryStorage())
        except ImportError as exc:
            print(json.dumps({"error": type(exc).__name__, "name": exc.name}))
        else:
            print(json.dumps({"error": None}))
    """)
    assert result == {"error": "ModuleNotFoundError", "name": "transitions"}


def test_a_lazy_module_imports_on_first_read_and_rebinds_its_global() -> None:
    namespace: dict[str, object] = {}
    stand_in = lazy_module("colorsys", namespace) if "colorsys" not in sys.modules else None
    if stand_in is None:
        pytest.skip("colorsys is already imported in this process")
    namespace["colorsys"] = stand_in
    assert "colorsys" not in sys.modules
    assert repr(stand_in) == "<colorsys, made on first use>"
    assert stand_in.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert namespace["colorsys"] is sys.modules["colorsys"]  # later reads skip the stand-in


def test_a_lazy_module_already_imported_is_the_module_itself() -> None:
    assert lazy_module("json", {}) is json


def test_a_lazy_module_must_be_top_level() -> None:
    with pytest.raises(ValueError, match="top-level"):
        lazy_module("os.path", {})


def test_a_lazy_logger_is_the_named_logger() -> None:
    # logging is imported in this process, so the logger is made at once.
    assert lazy_logger("appusers", {}) is logging.getLogger("appusers")


def test_a_lazy_logger_made_before_logging_is_the_same_logger() -> None:
    result = _fresh("""
        import json, sys
        from appusers._lazy import lazy_logger

        namespace = {}
        namespace["_log"] = stand_in = lazy_logger("appusers.probe", namespace)
        before = "logging" in sys.modules
        stand_in.setLevel(10)
        import logging
        print(json.dumps({"before": before, "same": namespace["_log"] is logging.getLogger("appusers.probe"),
                          "level": logging.getLogger("appusers.probe").level}))
    """)
    assert result == {"before": False, "same": True, "level": 10}
