"""Syntax-error counts from tree-sitter (ERROR and MISSING nodes), per language grammar wheel."""

from __future__ import annotations

import functools
import threading
from typing import Any

from nextedit.languages import ts_parser
from nextedit.metrics.text import common_prefix, common_suffix

__all__ = ["SYNTAX_SIGNATURE", "syntax_errors", "syntax_errors_around", "top_level_window"]

SYNTAX_SIGNATURE = "syntax_errors:v1|nodes=error+missing|parser=tree-sitter|scope=top_level_blocks"


_local = threading.local()


def _parser(language: str) -> Any | None:
    """One tree-sitter parser per language and thread (parsers are not safe to share)."""
    parsers = _local.__dict__.setdefault("parsers", {})
    if language not in parsers:
        parsers[language] = ts_parser(language)
    return parsers[language]


def _count(node: Any) -> int:
    """ERROR and MISSING nodes under `node`, visiting only subtrees that contain errors."""
    if not node.has_error:
        return 0
    n = 0
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.is_error or cur.is_missing:
            n += 1
        if cur.has_error:
            stack.extend(cur.children)
    return n


def _point(data: bytes, offset: int) -> tuple[int, int]:
    row = data.count(b"\n", 0, offset)
    return row, offset - (data.rfind(b"\n", 0, offset) + 1)


@functools.lru_cache(maxsize=256)
def _tree(text: str, language: str, base: str | None) -> Any | None:
    """Parse tree of `text`; reparsed incrementally from the tree of `base` when given."""
    parser = _parser(language)
    if parser is None:
        return None
    data = text.encode("utf-8")
    if base is None or base == text:
        return parser.parse(data)
    old_tree = _tree(base, language, None)
    old = base.encode("utf-8")
    p = common_prefix(old, data)  # type: ignore[arg-type]
    s = common_suffix(old, data, min(len(old), len(data)) - p)  # type: ignore[arg-type]
    edited = old_tree.copy()
    edited.edit(start_byte=p, old_end_byte=len(old) - s, new_end_byte=len(data) - s,
                start_point=_point(old, p), old_end_point=_point(old, len(old) - s),
                new_end_point=_point(data, len(data) - s))
    return parser.parse(data, edited)


@functools.lru_cache(maxsize=4096)
def syntax_errors(text: str, language: str, *, base: str | None = None) -> int | None:
    """Number of tree-sitter ERROR/MISSING nodes in `text`, or None without a grammar for `language`.

    `base` (optional) is a text already parsed, e.g. the original of an edit: `text` is then
    reparsed incrementally from its tree (same count, faster). An excerpt cut mid-construct has
    errors of its own, so compare counts before and after an edit rather than reading one alone.
    """
    if base == text:
        return syntax_errors(text, language)
    tree = _tree(text, language, base)
    return None if tree is None else _count(tree.root_node)


def _is_top(text: str, i: int) -> bool:
    """Whether the line starting at `i` starts a top-level item: no indent, not blank, not a closer."""
    return i < len(text) and text[i] not in " \t\r\n)]}"


def top_level_window(original: str, *edited: str) -> tuple[int, int]:
    """(start, tail): `original[start:len(original) - tail]` covers every change from `original` to
    each text in `edited`, widened to whole top-level blocks (from a line with no indentation that
    is not blank and not a closing bracket, up to the next such line). The same prefix and suffix
    are shared by every edited text."""
    changed = [t for t in edited if t != original]
    if not changed:
        return len(original), 0
    p = min(common_prefix(original, t) for t in changed)
    s = min(common_suffix(original, t, min(len(original), len(t)) - p) for t in changed)
    start = original.rfind("\n", 0, p) + 1
    while start > 0 and not _is_top(original, start):
        start = original.rfind("\n", 0, start - 1) + 1
    n = len(original)
    end = original.find("\n", n - s) + 1 or n
    while 0 < end < n and not _is_top(original, end):
        end = original.find("\n", end) + 1 or n
    return start, n - end


def syntax_errors_around(original: str, edited: list[str], language: str) -> tuple[int | None, list[int | None]]:
    """Syntax errors in the top-level blocks around the changes, before and in each edited text.

    Parsing only the blocks that changed (`top_level_window`) keeps the cost proportional to the
    edit; errors elsewhere in the excerpt are identical before and after, so deltas are unaffected
    except where the excerpt's own cut-off interacts with the edit.
    """
    start, tail = top_level_window(original, *edited)
    window = original[start:len(original) - tail]
    before = syntax_errors(window, language)
    after = [syntax_errors(t[start:len(t) - tail], language, base=window) for t in edited]
    return before, after
