"""Regular expressions on a linear-time engine (RE2), so no pattern can stall the store.

Python's ``re`` backtracks: ``^(a+)+$`` against 30 characters takes seconds, and
it holds the GIL while it does, freezing the whole server. Every pattern a
query, a watch filter or a pipeline carries is therefore compiled by RE2
(``google-re2``), whose matching time is linear in the input. RE2 has no
backreferences and no lookaround; a pattern using them is refused with a
:class:`DocumentStoreError` instead of being run on a backtracking engine.

mongomock, which evaluates queries, compiles patterns with ``re.compile`` and
recognises them by type. :func:`install` points both of its modules at
:data:`SHIM` (whose ``compile`` returns :class:`SafePattern`) and makes
``SafePattern`` its pattern type; :func:`safe_patterns` turns every BSON
``Regex`` and ``re.Pattern`` of a query or pipeline into a ``SafePattern``
before mongomock sees it, so nothing reaches a ``re`` engine.
"""

from __future__ import annotations

import functools
import re
import types
from typing import Any

import re2  # type: ignore[import-untyped]  # no stubs; used through SafePattern only
from bson.regex import Regex

from ._errors import DocumentStoreError

__all__ = ["MAX_PATTERN_LENGTH", "SHIM", "SafePattern", "compile_pattern", "install", "safe_patterns"]

#: MongoDB's limit on a pattern's length (error 51091 beyond it).
MAX_PATTERN_LENGTH = 32_764
#: The flags MongoDB's ``$options`` can set (``i m s x``); ``u`` is accepted and means nothing here.
_OPTION_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}
_SUPPORTED_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.UNICODE


class SafePattern:
    """A compiled RE2 pattern with the slice of ``re.Pattern``'s interface mongomock uses."""

    __slots__ = ("_regexp", "flags", "pattern")

    def __init__(self, pattern: str, flags: int, regexp: Any) -> None:
        self.pattern = pattern
        self.flags = flags
        self._regexp = regexp

    def search(self, text: Any) -> Any:
        """The first match in ``text`` or ``None``; a string RE2 cannot encode never matches."""
        if not isinstance(text, str):
            return None
        try:
            return self._regexp.search(text)
        except UnicodeError:  # a lone surrogate: no BSON string can hold one, so nothing to match
            return None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SafePattern):
            return (self.pattern, self.flags) == (other.pattern, other.flags)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.pattern, self.flags))

    def __repr__(self) -> str:
        return f"SafePattern({self.pattern!r}, {self.flags})"

    def to_bson(self) -> Regex[Any]:
        """The BSON ``Regex`` this pattern came from (for results that carry a pattern as a value)."""
        return Regex(self.pattern, self.flags)


def compile_pattern(pattern: Any, flags: int = 0) -> SafePattern:
    """``pattern`` compiled by RE2 with Python-style ``flags``, else a :class:`DocumentStoreError`."""
    if isinstance(pattern, SafePattern):
        pattern, flags = pattern.pattern, pattern.flags | flags
    if not isinstance(pattern, str):
        raise DocumentStoreError("$regex has to be a string")
    if not isinstance(flags, int) or isinstance(flags, bool):
        raise DocumentStoreError("regular expression flags must be an integer")
    return _compile(pattern, flags)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> SafePattern:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise DocumentStoreError("Regular expression is invalid: pattern string is too long")
    if flags & ~_SUPPORTED_FLAGS:
        raise DocumentStoreError("invalid flag in regex options")
    source = _strip_verbose(pattern) if flags & re.VERBOSE else pattern
    inline = "".join(c for f, c in ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s")) if flags & f)
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    try:
        regexp = re2.compile(f"(?{inline}){source}" if inline else source, options)
    except (re2.error, UnicodeError, TypeError, ValueError) as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise DocumentStoreError(
            f"Regular expression is invalid or not supported by the linear-time engine "
            f"(no backreferences or lookaround): {detail}"
        ) from None
    return SafePattern(pattern, flags, regexp)


def _strip_verbose(pattern: str) -> str:
    """The ``x`` option by hand (RE2 has none): drop unescaped whitespace and ``#`` comments."""
    out: list[str] = []
    i, in_class, n = 0, False, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
            out.append(c)
        elif c == "[":
            in_class = True
            out.append(c)
        elif c == "#":
            while i < n and pattern[i] != "\n":
                i += 1
            continue
        elif not c.isspace():
            out.append(c)
        i += 1
    return "".join(out)


def options_to_flags(options: Any) -> int:
    """MongoDB ``$options`` letters as Python flags; an unknown letter is an error, as in MongoDB."""
    if not isinstance(options, str):
        raise DocumentStoreError("$options has to be a string")
    flags = 0
    for letter in options:
        if letter not in _OPTION_FLAGS:
            raise DocumentStoreError(f"invalid flag in regex options: {letter}")
        flags |= _OPTION_FLAGS[letter]
    return flags


def safe_patterns(value: Any) -> Any:
    """``value`` with every pattern (``Regex``, ``re.Pattern``, ``{$regex}``) made a :class:`SafePattern`.

    Returns ``value`` itself when it holds no pattern. Compiling here, once per
    query, also reports a bad pattern before any document is read.
    """
    if isinstance(value, Regex):
        return compile_pattern(value.pattern, _regex_flags(value.flags))
    if isinstance(value, re.Pattern):
        return compile_pattern(value.pattern, value.flags & ~re.UNICODE)
    if isinstance(value, dict):
        if "$regex" in value:
            return _regex_condition(value)
        changed = {k: safe_patterns(v) for k, v in value.items()}
        return changed if any(changed[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        items = [safe_patterns(v) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def _regex_flags(flags: Any) -> int:
    if isinstance(flags, str):
        return options_to_flags(flags)
    return int(flags) & ~(re.UNICODE | re.LOCALE)


def _regex_condition(condition: dict[str, Any]) -> dict[str, Any]:
    """``{$regex: p, $options: o, ...}`` with ``$regex`` compiled and ``$options`` folded in."""
    out = {k: safe_patterns(v) for k, v in condition.items() if k not in ("$regex", "$options")}
    pattern = condition["$regex"]
    flags = options_to_flags(condition["$options"]) if "$options" in condition else 0
    if isinstance(pattern, Regex | re.Pattern | SafePattern):
        compiled = safe_patterns(pattern) if not isinstance(pattern, SafePattern) else pattern
        out["$regex"] = compile_pattern(compiled, flags)
    elif isinstance(pattern, str):
        out["$regex"] = compile_pattern(pattern, flags)
    else:
        raise DocumentStoreError("$regex has to be a string")
    return out


def _shim_compile(pattern: Any, flags: int = 0) -> SafePattern:
    return compile_pattern(pattern, flags)


#: A stand-in for the ``re`` module inside mongomock: same flag constants, RE2 ``compile``.
SHIM = types.SimpleNamespace(
    compile=_shim_compile,
    I=re.I, IGNORECASE=re.I, M=re.M, MULTILINE=re.M, S=re.S, DOTALL=re.S, X=re.X, VERBOSE=re.X,
    U=re.U, UNICODE=re.U, L=re.L, LOCALE=re.L,
)  # fmt: skip


@functools.cache
def install() -> None:
    """Point mongomock's matcher and aggregation at RE2 (idempotent; call before using either)."""
    from mongomock import aggregate as _aggregate
    from mongomock import filtering as _filtering

    # Untyped upstream modules, patched at this one border.
    aggregate: Any = _aggregate
    filtering: Any = _filtering
    filtering.re = SHIM
    filtering.RE_TYPE = SafePattern
    filtering._RE_TYPES = (SafePattern, Regex)
    aggregate.re = SHIM
    aggregate._RE_TYPES = (SafePattern, Regex)
