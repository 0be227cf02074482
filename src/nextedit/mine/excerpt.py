"""Choosing the editable region and the surrounding excerpt of a file around the cursor, within token budgets,
snapped to lines and grown to enclosing tree-sitter syntax nodes (reference/zed-ep.md section 6.3)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from rapidfuzz.distance import Indel

from nextedit.languages import language_for_path, ts_parser
from nextedit.metrics.text import common_prefix, common_suffix
from nextedit.patch import split_lines

EDITABLE_TOKENS = 350
CONTEXT_TOKENS = 1024
SYMMETRIC_SHARE = 0.75


class ExcerptError(ValueError):
    """The rows that must be editable do not fit the editable budget."""


@dataclass(frozen=True)
class Ranges:
    """Row ranges (0-based, end exclusive) of the editable region and of the whole excerpt around it."""

    editable: tuple[int, int]
    context: tuple[int, int]


@dataclass(frozen=True)
class Excerpt:
    """A slice of a file: its text, first row, the cursor and the editable region as char offsets into text."""

    text: str
    start_line: int
    cursor: int
    editable: tuple[int, int]


def line_cost(line: str) -> int:
    """Estimated tokens of a line: max(1, bytes / 3), as Zed estimates."""
    return max(1, len(line.encode("utf-8", "surrogatepass")) // 3)


#: The last tree parsed per (language, path) in this process, with its source: the base of the next parse.
_LAST_TREES: OrderedDict[tuple[str, str], tuple[bytes, Any]] = OrderedDict()
_KEEP_TREES = 16


def _point(data: bytes, offset: int) -> tuple[int, int]:
    """(row, byte column) of a byte offset."""
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


def _pieces(data: bytes) -> list[bytes]:
    """`data` cut after each newline (the pieces join back to `data`)."""
    parts = data.split(b"\n")
    pieces = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        pieces.append(parts[-1])
    return pieces


def _edits(old: bytes, new: bytes) -> list[tuple[int, int, int, tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """tree-sitter edits (start, old end, new end bytes and points) turning `old` into `new`, last first so
    that each is numbered in the text as it stands when it is applied: one per run of changed lines between
    the common prefix and suffix (a single edit spanning scattered changes makes tree-sitter re-parse all of
    the text between them)."""
    p = common_prefix(old, new)
    s = common_suffix(old, new, min(len(old), len(new)) - p)
    a, b = _pieces(old[p:len(old) - s]), _pieces(new[p:len(new) - s])
    gaps: list[tuple[int, int, int, int]] = []  # changed (old start, old end, new start, new end) bytes
    if a and b and len(a) + len(b) > 2:
        oa = list(accumulate(map(len, a), initial=p))
        na = list(accumulate(map(len, b), initial=p))
        i = j = 0
        for block in [*Indel.opcodes(a, b).as_matching_blocks(), None]:
            ba, bb, size = (len(a), len(b), 0) if block is None else (block.a, block.b, block.size)
            if ba > i or bb > j:
                gaps.append((oa[i], oa[ba], na[j], na[bb]))
            i, j = ba + size, bb + size
    if not gaps or len(gaps) > 64:
        gaps = [(p, len(old) - s, p, len(new) - s)]
    # Points of the gaps' old ends, counted forward once.
    points: list[tuple[tuple[int, int], tuple[int, int]]] = []
    row, at = 0, 0
    for o0, o1, _, _ in gaps:
        row += old.count(b"\n", at, o0)
        start = (row, o0 - (old.rfind(b"\n", 0, o0) + 1))
        row += old.count(b"\n", o0, o1)
        points.append((start, (row, o1 - (old.rfind(b"\n", 0, o1) + 1))))
        at = o1
    out = []
    for (o0, o1, n0, n1), (start, old_end) in zip(reversed(gaps), reversed(points), strict=True):
        seg = new[n0:n1]
        lines = seg.count(b"\n")
        new_end = (start[0] + lines, len(seg) - seg.rfind(b"\n") - 1) if lines else (start[0], start[1] + len(seg))
        out.append((o0, o1, o0 + n1 - n0, start, old_end, new_end))
    return out


def _span_edit(old: bytes, new: bytes) -> tuple[int, int, int, tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The one edit from the common prefix to the common suffix of `old` and `new`."""
    p = common_prefix(old, new)
    s = common_suffix(old, new, min(len(old), len(new)) - p)
    return p, len(old) - s, len(new) - s, _point(old, p), _point(old, len(old) - s), _point(new, len(new) - s)


def _reparse(parser: Any, data: bytes, base: Any, edits: list[tuple[Any, ...]]) -> Any:
    base = base.copy()
    for b0, b1, b2, p0, p1, p2 in edits:
        base.edit(start_byte=b0, old_end_byte=b1, new_end_byte=b2, start_point=p0, old_end_point=p1,
                  new_end_point=p2)
    return parser.parse(data, base)


def parse_tree(text: str, path: str) -> Any | None:
    """A tree-sitter tree of a file when its language has a grammar installed, else None.

    The samples of a commit (and of the commits before it) are versions of the same files a few edits
    apart: the last tree of the same path is edited to the new text and re-parsed incrementally, which
    reuses the unchanged subtrees and gives the tree a fresh parse gives (tests/test_mine_excerpt.py)."""
    lang = language_for_path(path)
    parser = ts_parser(lang.name) if lang else None
    if parser is None:
        return None
    assert lang is not None
    data = text.encode("utf-8", "surrogatepass")
    key = (lang.name, path)
    last = _LAST_TREES.pop(key, None)
    if last is None:
        tree = parser.parse(data)
    elif last[0] == data:
        tree = last[1]
    else:
        old, base = last
        edits = _edits(old, data)
        tree = _reparse(parser, data, base, edits)
        if len(edits) > 1 and tree.root_node.has_error:
            tree = _reparse(parser, data, base, [_span_edit(old, data)])
    _LAST_TREES[key] = (data, tree)
    while len(_LAST_TREES) > _KEEP_TREES:
        _LAST_TREES.popitem(last=False)
    return tree


def enclosing_rows(tree: Any, rows: tuple[int, int]) -> list[tuple[int, int]]:
    """Row ranges of the syntax nodes enclosing `rows`, innermost first, each strictly larger than the last."""
    if tree is None or rows[1] <= rows[0]:
        return []
    node = tree.root_node.descendant_for_point_range((rows[0], 0), (rows[1] - 1, 0))
    out: list[tuple[int, int]] = []
    lo, hi = rows
    while node is not None:
        start = node.start_point.row
        end = max(node.end_point.row + (1 if node.end_point.column > 0 else 0), start + 1)
        start, end = min(start, lo), max(end, hi)
        if (start, end) != (lo, hi) and start <= lo and end >= hi:
            out.append((start, end))
            lo, hi = start, end
        node = node.parent
    return out


def _line_costs(lines: Sequence[str]) -> list[int]:
    """`line_cost` of each line. An ASCII line's UTF-8 length is its length; otherwise, when the lines are the
    `split_lines` pieces of their text, the UTF-8 lengths come from one encode of the whole text."""
    text = "".join(lines)
    if text.isascii():
        return [n // 3 or 1 for n in map(len, lines)]
    if split_lines(text) != list(lines):
        return [line_cost(line) for line in lines]
    parts = text.encode("utf-8", "surrogatepass").split(b"\n")
    last = parts.pop()  # after the last newline: the last line when the text does not end with one
    costs = [(n + 1) // 3 or 1 for n in map(len, parts)]
    if last:
        costs.append(len(last) // 3 or 1)
    return costs


class _Costs:
    def __init__(self, lines: Sequence[str], costs: Sequence[int] | None = None):
        self.n = len(lines)
        if costs is None:
            costs = _line_costs(lines)
        self.prefix = [0, *accumulate(costs)]

    def of(self, a: int, b: int) -> int:
        return self.prefix[b] - self.prefix[a]


def _grow_lines(costs: _Costs, a: int, b: int, limit: float, up_first: bool) -> tuple[int, int]:
    """Add whole lines alternately below and above while they fit under `limit`."""
    used = costs.of(a, b)
    up_stuck = down_stuck = False
    up = up_first
    while not (up_stuck and down_stuck):
        if up and not up_stuck:
            if a > 0 and used + costs.of(a - 1, a) <= limit:
                a -= 1
                used += costs.of(a, a + 1)
            else:
                up_stuck = True
        elif not up and not down_stuck:
            if b < costs.n and used + costs.of(b, b + 1) <= limit:
                used += costs.of(b, b + 1)
                b += 1
            else:
                down_stuck = True
        up = not up
    return a, b


def _grow_syntax(costs: _Costs, tree: Any, a: int, b: int, limit: float) -> tuple[int, int]:
    """Grow to the enclosing syntax nodes, innermost first, while the whole node fits under `limit`."""
    for start, end in enclosing_rows(tree, (a, b)):
        start, end = max(start, 0), min(end, costs.n)
        if costs.of(start, end) > limit:
            break
        a, b = start, end
    return a, b


def choose_ranges(lines: Sequence[str], cursor_row: int, *, include: tuple[int, int] | None = None,
                  tree: Any | None = None, editable_tokens: int = EDITABLE_TOKENS,
                  context_tokens: int = CONTEXT_TOKENS, line_costs: Sequence[int] | None = None) -> Ranges:
    """Editable and excerpt rows around the cursor.

    Editable: the cursor row (and the `include` rows), grown line by line alternately down and up with
    75 % of `editable_tokens`, then to the enclosing syntax nodes that fit the whole budget, then line
    by line again, first in the direction that grew least. Excerpt: the editable rows grown to enclosing
    syntax nodes within `context_tokens` more, then filled line by line (up first) with what is left.
    `line_costs` (one token count per line, e.g. from a real tokenizer) replaces the bytes/3 estimate.
    Raises ExcerptError when the cursor and `include` rows alone exceed `editable_tokens`."""
    n = len(lines)
    if n == 0:
        return Ranges((0, 0), (0, 0))
    cursor_row = min(max(cursor_row, 0), n - 1)
    if line_costs is not None and len(line_costs) != n:
        raise ValueError(f"line_costs has {len(line_costs)} entries for {n} lines")
    costs = _Costs(lines, line_costs)
    a, b = cursor_row, cursor_row + 1
    if include is not None:
        a, b = min(a, max(include[0], 0)), max(b, min(include[1], n))
    need = costs.of(a, b)
    if need > editable_tokens:
        raise ExcerptError(f"rows {a + 1}-{b} need {need} tokens, more than the editable budget of {editable_tokens}")
    a0, b0 = a, b
    a, b = _grow_lines(costs, a, b, SYMMETRIC_SHARE * editable_tokens, up_first=False)
    a, b = _grow_syntax(costs, tree, a, b, editable_tokens)
    a, b = _grow_lines(costs, a, b, editable_tokens, up_first=(a0 - a) < (b - b0))
    editable = (a, b)
    limit = costs.of(a, b) + context_tokens
    c, d = _grow_syntax(costs, tree, a, b, limit)
    c, d = _grow_lines(costs, c, d, limit, up_first=True)
    return Ranges(editable, (c, d))


def make_excerpt(lines: Sequence[str], ranges: Ranges, cursor: tuple[int, int]) -> Excerpt:
    """Cut the excerpt rows out of `lines` with the cursor (row, column) and editable region as offsets."""
    c0, c1 = ranges.context
    e0, e1 = ranges.editable
    offsets = [0, *accumulate(len(line) for line in lines[c0:c1])]
    row, col = cursor
    if not c0 <= row <= c1 or (row == c1 and (col or c1 < len(lines))):
        raise ExcerptError(f"cursor row {row} lies outside the excerpt rows {c0}-{c1}")
    line_len = len(lines[row].rstrip("\n")) if row < len(lines) else 0
    cursor_offset = offsets[row - c0] + min(col, line_len)
    return Excerpt("".join(lines[c0:c1]), c0, cursor_offset, (offsets[e0 - c0], offsets[e1 - c0]))


def excerpt_around(text: str, cursor: int, path: str, *, editable_tokens: int = EDITABLE_TOKENS,
                   context_tokens: int = CONTEXT_TOKENS) -> Excerpt:
    """Convenience for other stages: the excerpt and editable region of a whole file around a char offset."""
    lines = split_lines(text)
    prefix = text[:cursor]
    row = prefix.count("\n")
    col = len(prefix) - (prefix.rfind("\n") + 1)
    if row >= len(lines) and lines:
        row, col = len(lines) - 1, len(lines[-1].rstrip("\n"))
    ranges = choose_ranges(lines, row, tree=parse_tree(text, path), editable_tokens=editable_tokens,
                           context_tokens=context_tokens)
    return make_excerpt(lines, ranges, (row, col))
