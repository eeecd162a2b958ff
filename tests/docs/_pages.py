"""What the documentation consists of, for the docs tests: pages, examples, code blocks."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"

#: Pages other engineers own. Their code blocks are sketches of internals, not user-facing
#: examples, so the executed-example rule does not reach them; they are still built with -W.
CONTRIBUTED_PAGES = frozenset({"performance.md", "bindings-qt.md", "server-documents.md", "reliability.md"})

#: Fence languages that are not Python and need no example file. Shell blocks are checked
#: separately: every `appusers COMMAND` they show must be a real command.
SHELL_LANGUAGES = frozenset({"console", "shell", "bash", "sh", "shell-session"})
DATA_LANGUAGES = frozenset({"toml", "json", "text", "none", "ini", "jsonl"})
PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "pycon", "ipython", "default", ""})

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_RST_CODE = re.compile(r"^\s*\.\. (?:code-block|code|sourcecode)::\s*(?P<lang>\S*)", re.MULTILINE)
_RST_LITERAL = re.compile(r"::\s*$", re.MULTILINE)


@attrs.frozen
class Block:
    """One fenced block of a Markdown page: ``kind`` is the fence info (``{literalinclude}``,
    ``python``, ``console``...), ``argument`` the directive argument, ``body`` its lines."""

    page: str
    line: int
    kind: str
    argument: str
    body: tuple[str, ...]


def pages() -> list[Path]:
    """The pages this team owns (every .md/.rst under docs/, minus build output and examples)."""
    found = []
    for path in sorted(DOCS.rglob("*")):
        rel = path.relative_to(DOCS)
        if path.suffix not in (".md", ".rst") or rel.parts[0] in ("_build", "examples"):
            continue
        if str(rel) in CONTRIBUTED_PAGES:
            continue
        found.append(path)
    return found


def examples() -> list[Path]:
    """Every example script: docs/examples/<topic>_<n>.py."""
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def markdown_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a MyST page, outermost first (nested fences are reported too)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    open_stack: list[tuple[str, int, str]] = []  # (fence, start line, info)
    bodies: list[list[str]] = []
    for number, line in enumerate(lines, start=1):
        match = _FENCE.match(line)
        if match and open_stack and match["fence"][0] == open_stack[-1][0][0] and \
                len(match["fence"]) >= len(open_stack[-1][0]) and not match["info"].strip():
            _fence, start, info = open_stack.pop()
            body = bodies.pop()
            kind, _, argument = info.strip().partition(" ")
            blocks.append(Block(path.name, start, kind.strip(), argument.strip(), tuple(body)))
            if bodies:
                bodies[-1].append(line)
            continue
        if match and (not open_stack or match["info"].strip().startswith("{") or
                      open_stack[-1][2].strip().startswith("{")):
            open_stack.append((match["fence"], number, match["info"]))
            bodies.append([])
            continue
        if bodies:
            bodies[-1].append(line)
    assert not open_stack, f"{path.name}: unclosed code fence opened on line {open_stack[-1][1]}"
    return blocks


def options(block: Block) -> dict[str, str]:
    """A directive block's ``:name: value`` options."""
    found = {}
    for line in block.body:
        match = re.match(r"^:([\w-]+):\s*(.*)$", line.strip())
        if not match:
            break
        found[match[1]] = match[2]
    return found


def rst_code_languages(path: Path) -> list[str]:
    """Languages of the explicit code blocks of an .rst page, plus ``"literal"`` per ``::`` block."""
    text = path.read_text(encoding="utf-8")
    return [m["lang"] or "default" for m in _RST_CODE.finditer(text)] + [
        "literal" for _ in _RST_LITERAL.finditer(text)
    ]
