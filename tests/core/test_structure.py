"""The core's modules form no import circle, whether imports run at import time, inside a
function or only for the type checker (``if TYPE_CHECKING:``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Source directory -> package, as mapped in pyproject.toml.
PACKAGES = {ROOT / "core": "appusers", ROOT / "adapters": "appusers.adapters"}


def _modules() -> dict[str, Path]:
    found = {}
    for directory, package in PACKAGES.items():
        for path in sorted(directory.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``path`` imports, anywhere in the file."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in known else source)
    return {t for t in targets if t in known and t != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (as a path that returns to its start), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for target in sorted(graph[node]):
            if colour[target] == grey:
                return [*stack[stack.index(target):], target]
            if colour[target] == white:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_type_checking_and_function_level_imports() -> None:
    graph = _graph()
    # Lazy import inside a property: the default transport.
    assert "appusers.adapters._aiohttp" in graph["appusers._pipeline"]
    # `if TYPE_CHECKING:` import.
    assert "appusers._pipeline" in graph["appusers._mongo"]
    # `from . import _ejson` names a module, not the package.
    assert "appusers._ejson" in graph["appusers._pipeline"]


def test_core_and_adapters_have_no_import_circle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_app_user_and_services_are_layered() -> None:
    """The request pipeline and the persistence sit below ``User`` and the service objects,
    which sit below ``App``: nothing below imports what is above it."""
    graph = _graph()
    assert "appusers._app" not in graph["appusers._user"]
    for service in ("_api_keys", "_email_password", "_functions", "_mongo", "_pipeline", "_persistence"):
        assert not {"appusers._app", "appusers._user"} & graph[f"appusers.{service}"], service


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported before any other appusers module: a runtime circle would fail
    with an ImportError or AttributeError on a partly initialised module."""
    names = sorted(n for n in _modules() if not n.endswith(("__main__", "_contract")))
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'appusers' or m.startswith('appusers.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "print('ok', len(" + repr(names) + "))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", str(len(names))]
