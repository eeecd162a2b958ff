"""Sphinx configuration of the appusers documentation.

Build (CI runs the same command from tests/docs/test_docs_build.py)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Every Python example is a script under ``docs/examples/`` shown with
``literalinclude`` and executed against a local server by tests/docs/test_examples.py.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import appusers

_HERE = Path(__file__).parent

project = "appusers"
author = "appusers contributors"
copyright = "appusers contributors"  # noqa: A001 - the name Sphinx reads
release = appusers.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Every cross-reference must resolve. The docs build offline (no intersphinx), so names from
# the standard library and third-party packages cannot resolve and are ignored by pattern.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(builtins\.)?(str|int|float|bool|bytes|object|dict|list|tuple|set|type|None|Any)"),
    (r"py:.*", r"(typing|typing_extensions|collections\.abc|collections|abc)\..*"),
    (r"py:.*", r"(Mapping|MutableMapping|Sequence|Callable|Awaitable|AsyncIterator|Iterator|Literal)"),
    (r"py:.*", r"(asyncio|contextlib|enum|os|pathlib|ssl|types|logging|threading|concurrent)\..*"),
    (r"py:.*", r"(Path|PathLike|TracebackType|Counter|AbstractAsyncContextManager|ClassVar|Final|TypeVar)"),
    (r"py:.*", r"(reactivex|rx|attrs|aiohttp|pytest|bson|yarl|multidict)\..*"),
    (r"py:.*", r"(Observable|DisposableBase|SchedulerBase|ObserverBase|ObjectId|Decimal128)"),
    (r"py:.*", r"(_T|T|TokenKind|ssl\.SSLContext|SSLContext)"),
    # Exceptions the standard library defines, named as bases of the error tree.
    (r"py:.*", r"(Exception|ValueError|LookupError|KeyError|OSError|TimeoutError|RuntimeError)"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_class_signature = "separated"
# Dataclass-like attrs classes have generated __init__ signatures worth showing.
autodoc_preserve_defaults = True

html_theme = "alabaster"
html_title = f"appusers {release}"
html_theme_options = {"description": "Users of an App Services-style backend, as reactive state machines"}
# Other engineers add screenshots under _static/; an absent directory would be a warning.
html_static_path = ["_static"] if (_HERE / "_static").is_dir() else []

# Pages other people write; listed in the index only while they exist, so the build stays
# clean whichever of them have landed.
CONTRIBUTED_PAGES = ["bindings-qt", "server-documents", "performance"]

# Public classes are defined in private modules (appusers._app...) and re-exported; show
# and cross-reference them under the name users import them by.
PUBLIC_MODULES = [
    "appusers",
    "appusers.errors",
    "appusers.transport",
    "appusers.storage",
    "appusers.adapters",
    "appusers.adapters.storage_contract",
    "appusers.adapters.transport_contract",
    "appusers.server",
    "appusers.bindings.asyncio",
]


def _claim_public_names() -> None:
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, type) or callable(obj):
                owner = getattr(obj, "__module__", "") or ""
                # Only names defined in a private submodule move; appusers.App stays appusers.App
                # even though appusers.errors.AppError is re-exported from appusers.
                if owner.startswith(module_name + "._"):
                    try:
                        obj.__module__ = module_name
                    except (AttributeError, TypeError):
                        pass


_claim_public_names()


def _contributed_toctree(app: Any, docname: str, source: list[str]) -> None:
    """Fill the index's placeholder with the contributed pages that exist now."""
    if docname != "index":
        return
    present = [page for page in CONTRIBUTED_PAGES if (_HERE / f"{page}.md").exists()]
    source[0] = source[0].replace("CONTRIBUTED_PAGES_PLACEHOLDER", "\n".join(present))


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _contributed_toctree)
    return {"parallel_read_safe": True}
