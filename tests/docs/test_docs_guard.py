"""Guards that keep the documentation honest as it grows.

* Every Python code block in a page is a ``literalinclude`` of an executed example file
  (tests/docs/test_examples.py runs them all); an inline ``python`` block fails here.
* Every example file is shown somewhere, and is shaped the way pages include it.
* Every ``appusers ...`` command a shell block shows exists (``COMMAND --help`` exits 0).
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ._pages import (
    DATA_LANGUAGES,
    DOCS,
    EXAMPLES,
    PYTHON_LANGUAGES,
    ROOT,
    SHELL_LANGUAGES,
    Block,
    examples,
    markdown_blocks,
    options,
    pages,
    rst_code_languages,
)

#: Directives whose body is prose or a list of pages, never code of their own.
PROSE_DIRECTIVES = frozenset({
    "{toctree}", "{note}", "{warning}", "{tip}", "{important}", "{seealso}", "{admonition}",
    "{attention}", "{caution}", "{hint}", "{contents}", "{rubric}", "{versionadded}",
})
#: Global options of the appusers command that take a value.
VALUE_OPTIONS = frozenset({"--app-id", "--base-url", "--data-dir", "--timeout"})


def all_blocks() -> list[Block]:
    return [block for page in pages() if page.suffix == ".md" for block in markdown_blocks(page)]


def test_the_guard_sees_the_pages() -> None:
    names = {p.name for p in pages()}
    assert {"authenticate.md", "streams.md", "api.rst", "index.md"} <= names
    assert any(b.kind == "{literalinclude}" for b in all_blocks())


def problems(page: Path) -> list[str]:
    """What breaks the executed-examples rule on ``page`` (empty when it is clean)."""
    found: list[str] = []
    if page.suffix == ".rst":
        if rst_code_languages(page):
            found.append(f"{page.name}: code belongs in docs/examples/, included")
        return found
    for block in markdown_blocks(page):
        where = f"{page.name}:{block.line}"
        kind = block.kind.lower()
        if kind == "{literalinclude}":
            target = (page.parent / block.argument).resolve()
            opts = options(block)
            if target.parent != EXAMPLES.resolve() or target not in examples():
                found.append(f"{where}: include an existing examples/<topic>_<n>.py, not {block.argument}")
            elif opts.get("language", "python") != "python":
                found.append(f"{where}: examples are Python")
            elif opts.get("lines") != "3-" and "pyobject" not in opts:
                found.append(f"{where}: show the example without its docstring (:lines: 3-) or :pyobject:")
        elif kind in ("{code-block}", "{code}", "{sourcecode}"):
            language = block.argument.lower()
            if language in PYTHON_LANGUAGES:
                found.append(f"{where}: Python must be an executed example file, included")
            elif language not in SHELL_LANGUAGES | DATA_LANGUAGES:
                found.append(f"{where}: unknown language {language!r}")
        elif kind == "{eval-rst}":
            text = "\n".join(block.body)
            if ".. code" in text or "::\n" in text or text.rstrip().endswith("::"):
                found.append(f"{where}: no code inside eval-rst")
        elif kind.startswith("{"):
            if kind not in PROSE_DIRECTIVES:
                found.append(f"{where}: directive {kind} is not known to this guard")
        elif kind in PYTHON_LANGUAGES:
            found.append(
                f"{where}: an inline {kind or 'unlabelled'} block; put the code in docs/examples/ "
                "(tests/docs/test_examples.py runs it) and literalinclude it"
            )
        elif kind not in SHELL_LANGUAGES | DATA_LANGUAGES:
            found.append(f"{where}: unknown language {kind!r}")
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_no_python_block_is_untested(page: Path) -> None:
    assert problems(page) == []


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("```python\nprint(1)\n```\n", "inline python block"),
        ("```\nprint(1)\n```\n", "inline unlabelled block"),
        ("```{code-block} python\nprint(1)\n```\n", "Python must be an executed example"),
        ("````{note}\n```py\nx = 1\n```\n````\n", "inline py block"),
        ("```{literalinclude} examples/nope_1.py\n:lines: 3-\n```\n", "include an existing"),
        ("```{literalinclude} examples/auth_1.py\n```\n", "without its docstring"),
        ("```{eval-rst}\n.. code-block:: python\n\n   x = 1\n```\n", "no code inside eval-rst"),
    ],
)
def test_the_guard_catches_untested_code(text: str, complaint: str, tmp_path: Path) -> None:
    page = probe_page(tmp_path)
    page.write_text("# Probe\n\n" + text, encoding="utf-8")
    found = problems(page)
    assert len(found) == 1 and complaint in found[0], found


def probe_page(tmp_path: Path) -> Path:
    """A page path whose ``examples/`` is the real one, so includes resolve as in docs/."""
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    return tmp_path / "probe.md"


def test_the_guard_accepts_a_clean_page(tmp_path: Path) -> None:
    page = probe_page(tmp_path)
    page.write_text(
        "# Probe\n\n```console\n$ appusers serve\n```\n\n"
        "```{literalinclude} examples/auth_1.py\n:lines: 3-\n```\n\n```toml\napp_id = 'x'\n```\n",
        encoding="utf-8",
    )
    assert problems(page) == []


def included_examples() -> set[Path]:
    found = set()
    for page in pages():
        if page.suffix != ".md":
            continue
        for block in markdown_blocks(page):
            if block.kind == "{literalinclude}":
                found.add((page.parent / block.argument).resolve())
    return found


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
def test_example_is_shown_and_well_formed(path: Path) -> None:
    assert path.resolve() in included_examples(), f"{path.name} is not included by any page"
    lines = path.read_text(encoding="utf-8").splitlines()
    # Pages include from line 3: line 1 is the docstring the tests read, line 2 is blank.
    assert lines[0].startswith('"""') and lines[0].endswith('"""') and len(lines[0]) > 6, path.name
    assert lines[1] == "", path.name
    tree = ast.parse("\n".join(lines))
    mains = [n for n in tree.body if isinstance(n, ast.AsyncFunctionDef) and n.name == "main"]
    assert mains, f"{path.name} defines no `async def main(...)`"
    claims = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Assert)
        or (isinstance(n, ast.Raise) and "AssertionError" in ast.unparse(n.exc or ast.Constant(None)))
    ]
    assert claims, f"{path.name} asserts nothing"


def appusers_commands() -> set[tuple[str, ...]]:
    """The leading command words of every `appusers ...` line of every shell block."""
    found = set()
    for block in all_blocks():
        kind = block.argument if block.kind in ("{code-block}", "{code}") else block.kind
        if kind not in SHELL_LANGUAGES:
            continue
        for line in block.body:
            if kind == "console" and not line.startswith("$ "):
                continue  # output, not a command
            text = line.strip().removeprefix("$ ").split(" #", 1)[0]
            if not text.startswith("appusers ") and text != "appusers":
                continue
            words = shlex.split(text)[1:]
            command: list[str] = []
            skip = False
            for word in words:
                if skip:
                    skip = False
                elif word in VALUE_OPTIONS:
                    skip = True
                elif word.startswith("-"):
                    if command:
                        break
                elif len(command) < 2:
                    command.append(word)
                else:
                    break
            found.add(tuple(command))
    return found


def test_shell_blocks_show_real_commands() -> None:
    commands = appusers_commands()
    assert ("serve",) in {c[:1] for c in commands}
    for command in sorted(commands):
        # `COMMAND [SUBCOMMAND] --help` exits 0 only if argparse knows the command.
        result = subprocess.run(  # fixed argv, our own interpreter
            [sys.executable, "-m", "appusers", *command, "--help"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, f"`appusers {' '.join(command)}` is not a command: {result.stderr}"


def test_contributed_pages_are_in_the_toctree_when_present() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    assert spec is not None and spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    source = [(DOCS / "index.md").read_text(encoding="utf-8")]
    conf._contributed_toctree(None, "index", source)
    for page in conf.CONTRIBUTED_PAGES:
        assert ((DOCS / f"{page}.md").exists()) == (f"\n{page}" in source[0]), page
