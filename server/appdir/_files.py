"""Reading an app directory's JSON files: every error names the file (relative) and the key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError

__all__ = ["AppFile", "read_json"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"key {key!r} appears twice")
        found[key] = value
    return found


class AppFile:
    """One file of the app directory: its path relative to the root, for messages."""

    def __init__(self, root: Path, path: Path):
        self.path = path
        self.name = path.relative_to(root).as_posix()

    def error(self, key: str | None, message: str) -> ConfigError:
        """A ConfigError saying ``<file>: <key>: <message>``."""
        return ConfigError(f"{self.name}: {key}: {message}" if key else f"{self.name}: {message}")

    def json(self) -> Any:
        """The parsed JSON (duplicate keys refused: they hide settings)."""
        return read_json(self)

    def object(self) -> Mapping[str, Any]:
        """The file's JSON, which must be an object."""
        data = self.json()
        if not isinstance(data, Mapping):
            raise self.error(None, "must hold a JSON object")
        return data

    def check_keys(self, data: Mapping[str, Any], known: frozenset[str], where: str = "") -> None:
        """Every key of ``data`` (at ``where``) is one of ``known``."""
        for key in data:
            if key not in known:
                raise self.error(f"{where}.{key}" if where else str(key), "unknown key")

    def get(
        self, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str = ""
    ) -> Any:
        """``data[key]`` checked against ``kind`` (bool is not an int), or ``default`` if absent."""
        if key not in data:
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = "/".join(k.__name__ for k in kinds)
            raise self.error(f"{where}.{key}" if where else key, f"must be of type {names}")
        return value


def read_json(file: AppFile) -> Any:
    """Parse ``file``; ConfigError naming it when it is unreadable or not JSON."""
    try:
        text = file.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise file.error(None, f"cannot read: {type(exc).__name__}") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise file.error(None, f"not valid JSON: {exc}") from None
