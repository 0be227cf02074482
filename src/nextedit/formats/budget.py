"""Token counting (a real tokenizer or the bytes/3 estimate) and the editable/context window a format shows."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nextedit.mine.excerpt import ExcerptError, choose_ranges, parse_tree
from nextedit.patch import split_lines
from nextedit.record import Snapshot

__all__ = ["TokenCounter", "Window", "choose_window", "estimate_tokens", "token_counter"]

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """Zed's estimate: UTF-8 bytes / 3 (rounded down)."""
    return len(text.encode("utf-8", "surrogatepass")) // 3


def token_counter(tokenizer: Any | None = None) -> TokenCounter:
    """A function counting the tokens of a text.

    `tokenizer` may be None (bytes / 3), an object with `encode(text)` (a transformers tokenizer, whose
    special tokens are not added, or a `tokenizers.Tokenizer`, whose `Encoding.ids` are counted), or a
    plain callable returning a count.
    """
    if tokenizer is None:
        return estimate_tokens
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        def count(text: str) -> int:
            try:
                ids = encode(text, add_special_tokens=False)
            except TypeError:
                ids = encode(text)
            ids = getattr(ids, "ids", ids)
            return len(ids)
        return count
    if callable(tokenizer):
        return lambda text: int(tokenizer(text))
    raise TypeError(f"tokenizer must have encode() or be callable, got {type(tokenizer).__name__}")


@dataclass(frozen=True)
class Window:
    """What a format shows of snapshot.text: the editable region and the whole context around it.

    Char offsets into snapshot.text; `context` contains `editable`, which contains the cursor. The
    rows are 0-based excerpt rows (end exclusive) of the same ranges.
    """

    editable: tuple[int, int]
    context: tuple[int, int]
    editable_rows: tuple[int, int]
    context_rows: tuple[int, int]


def _row_of(offsets: Sequence[int], offset: int) -> int:
    """Index of the row containing char `offset` (offsets[i] = start of row i, offsets[-1] = len(text))."""
    return min(max(bisect.bisect_right(offsets, offset) - 1, 0), len(offsets) - 2)


def choose_window(snapshot: Snapshot, editable_tokens: int, context_tokens: int,
                  count: TokenCounter | None = None) -> Window:
    """The editable window (inside snapshot.editable, around the cursor, within `editable_tokens`) and the
    context window around it (within `context_tokens` more), on whole lines, grown to syntax nodes
    (nextedit.mine.excerpt.choose_ranges). Depends only on the snapshot, the budgets and the counter, so
    render and parse compute the same window. Raises ValueError when the cursor line alone is too big."""
    text = snapshot.text
    lines = split_lines(text)
    if not lines:
        return Window((0, 0), (0, 0), (0, 0), (0, 0))
    count = count or estimate_tokens
    costs = [max(1, count(line)) for line in lines]
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    s0, e0 = snapshot.editable or (0, len(text))
    ra = _row_of(offsets, s0)
    rb = min(max(bisect.bisect_left(offsets, e0), ra + 1), len(lines))
    cursor_row = _row_of(offsets, snapshot.cursor)
    full_tree = parse_tree(text, snapshot.path)
    sub_tree = full_tree if ra == 0 else parse_tree("".join(lines[ra:rb]), snapshot.path)
    try:
        inner = choose_ranges(lines[ra:rb], cursor_row - ra, tree=sub_tree, editable_tokens=editable_tokens,
                              context_tokens=0, line_costs=costs[ra:rb])
    except ExcerptError as exc:
        raise ValueError(f"the cursor line does not fit editable_tokens={editable_tokens} ({exc})") from None
    ea, eb = ra + inner.editable[0], ra + inner.editable[1]
    outer = choose_ranges(lines, min(max(cursor_row, ea), eb - 1), include=(ea, eb), tree=full_tree,
                          editable_tokens=sum(costs[ea:eb]), context_tokens=context_tokens, line_costs=costs)
    ca, cb = min(outer.context[0], ea), max(outer.context[1], eb)
    editable = (max(offsets[ea], s0), min(offsets[eb], e0))
    return Window(editable, (min(offsets[ca], editable[0]), max(offsets[cb], editable[1])), (ea, eb), (ca, cb))
