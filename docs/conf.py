"""Sphinx configuration of the appusers documentation.

Build (CI runs the same command from tests/docs/test_docs_build.py)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Every Python example is a script under ``docs/examples/`` shown with
``literalinclude`` and executed against a local server by tests/docs/test_examples.py.
"""

from __future__ import annotations

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
    (r"py:.*", r"(reactivex|rx|attrs|aiohttp|pytest|_pytest|bson|yarl|multidict)\..*"),
    (r"py:.*", r"(Observable|DisposableBase|SchedulerBase|ObserverBase|ObjectId|Decimal128)"),
    (r"py:.*", r"(.*\.)?(_T\w*|TokenKind|SSLContext)"),
    # ServerConfig's settings tables are private: the server is configured with TOML (server.md).
    (r"py:class", r"appusers\.server\._config\.(\w+Settings|ProvidersConfig)"),
    # Exceptions the standard library defines, named as bases of the error tree.
    (r"py:.*", r"(Exception|ValueError|LookupError|KeyError|OSError|TimeoutError|RuntimeError)"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
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

# Public classes live in private modules (appusers._app...) and are re-exported; signatures
# name them by their defining module. Resolve such a reference to the public name the docs
# document (appusers._app.App -> appusers.App) instead of rewriting the classes' __module__,
# which would cost autodoc their source order and attribute docstrings.
def _public_candidates(target: str) -> list[str]:
    parts = target.split(".")
    public = [p for p in parts if not (p.startswith("_") and not p.startswith("__"))]
    candidates = []
    if public != parts and len(public) >= 2:
        candidates.append(".".join(public))
        # appusers.server._config.X -> appusers.server.X, then appusers.X
        for cut in range(len(public) - 2, 0, -1):
            candidates.append(".".join(public[:cut] + public[-1:]))
    return candidates


def _resolve_private(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    for candidate in _public_candidates(node.get("reftarget", "")):
        if candidate in domain.objects:
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
            )
    return None


def _contributed_toctree(app: Any, docname: str, source: list[str]) -> None:
    """Fill the index's placeholder with the contributed pages that exist now."""
    if docname != "index":
        return
    present = [page for page in CONTRIBUTED_PAGES if (_HERE / f"{page}.md").exists()]
    source[0] = source[0].replace("CONTRIBUTED_PAGES_PLACEHOLDER", "\n".join(present))


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _contributed_toctree)
    app.connect("missing-reference", _resolve_private)
    return {"parallel_read_safe": True}
