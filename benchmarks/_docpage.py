"""docs/performance.md is written by three scripts; each owns a marked section of it.

``run.py --write-docs`` writes the page and its own tables (the SDK targets of issue 11);
``server.py --write-docs`` and ``workers.py --write-docs`` each write one section between
``<!-- begin NAME -->`` and ``<!-- end NAME -->`` markers (issue 10's server figures), which
the other scripts keep as they are. So every figure on the page comes from the run of the
script that owns its section, and rerunning one script never drops another's figures.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"

_SECTION = re.compile(r"<!-- begin (?P<name>[\w.-]+) -->\n.*?<!-- end (?P=name) -->\n", re.S)


def sections(text: str) -> dict[str, str]:
    """The marked sections of a page, by owner, markers included (in page order)."""
    return {m["name"]: m[0] for m in _SECTION.finditer(text)}


def write_section(name: str, body: list[str], path: Path = DOC) -> None:
    """Replace (or append) the section ``name`` of ``path`` with ``body``'s lines."""
    block = "\n".join([f"<!-- begin {name} -->", *body, f"<!-- end {name} -->"]) + "\n"
    text = path.read_text() if path.exists() else "# Performance\n"
    old = sections(text).get(name)
    if old is not None:
        text = text.replace(old, block)
    else:
        # Before the closing "How the figures are reached" part written by run.py, if present.
        cut = text.find("\n## How the figures are reached")
        text = text + "\n" + block if cut < 0 else text[: cut + 1] + block + text[cut:]
    path.write_text(text)


def kept_sections(path: Path = DOC, *, owner: str) -> list[str]:
    """The lines of every section not owned by ``owner``: a page rewrite keeps them."""
    if not path.exists():
        return []
    out: list[str] = []
    for name, block in sections(path.read_text()).items():
        if name != owner:
            out += [*block.rstrip("\n").splitlines(), ""]
    return out


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low} \u2013 {high}"


def loads(values: list[float]) -> str:
    return spread(values, "{:.1f}")
