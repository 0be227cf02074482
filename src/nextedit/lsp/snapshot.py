"""Building the record Snapshot sent to `nextedit serve` from an open document, and mapping the
prediction it returns (edits in char offsets of the excerpt) back to document char offsets."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from nextedit import patch as patchlib
from nextedit.mine.excerpt import (
    CONTEXT_TOKENS,
    EDITABLE_TOKENS,
    ExcerptError,
    excerpt_around,
    line_cost,
)
from nextedit.patch import line_offsets
from nextedit.record import HistoryEvent, Snapshot


class PredictionShapeError(ValueError):
    """A prediction from the server whose edits or patch do not fit the snapshot it was asked for."""


@dataclass(frozen=True)
class Edit:
    """Replace chars [start, end) with `text` (offsets into whatever text the edit belongs to)."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class BuiltSnapshot:
    """A snapshot and where its excerpt lies in the document."""

    snapshot: Snapshot
    #: Document char offset of snapshot.text[0].
    offset: int

    @property
    def editable(self) -> tuple[int, int]:
        """The editable region in document char offsets."""
        start, end = self.snapshot.editable or (0, len(self.snapshot.text))
        return self.offset + start, self.offset + end


def build_snapshot(text: str, cursor: int, path: str, history: list[HistoryEvent], *,
                   editable_tokens: int = EDITABLE_TOKENS,
                   context_tokens: int = CONTEXT_TOKENS) -> BuiltSnapshot:
    """The excerpt, cursor and editable region around `cursor` (a char offset into the document).

    Raises ExcerptError when the cursor line alone is larger than the editable budget."""
    cursor = min(max(cursor, 0), len(text))
    lo, hi = window(text, cursor, editable_tokens + context_tokens)
    part = text[lo:hi]
    excerpt = excerpt_around(part, cursor - lo, path, editable_tokens=editable_tokens,
                             context_tokens=context_tokens)
    starts = line_offsets(part)
    offset = lo + (starts[excerpt.start_line] if excerpt.start_line < len(starts) else len(part))
    snapshot = Snapshot(path=path, text=excerpt.text, start_line=text.count("\n", 0, lo) + excerpt.start_line,
                        cursor=excerpt.cursor, editable=excerpt.editable, history=list(history))
    return BuiltSnapshot(snapshot, offset)


def window(text: str, cursor: int, tokens: int) -> tuple[int, int]:
    """Whole lines around the cursor's line that can hold any excerpt of `tokens` tokens (each side
    alone reaches past the budget, or the file's edge), so that parsing and cutting the excerpt
    never has to look at the rest of a long file."""
    start = text.rfind("\n", 0, cursor) + 1
    end = text.find("\n", cursor)
    end = len(text) if end == -1 else end + 1
    used = 0
    while start > 0 and used <= tokens:
        prev = text.rfind("\n", 0, start - 1) + 1
        used += line_cost(text[prev:start])
        start = prev
    used = 0
    while end < len(text) and used <= tokens:
        nxt = text.find("\n", end)
        nxt = len(text) if nxt == -1 else nxt + 1
        used += line_cost(text[end:nxt])
        end = nxt
    return start, end


def _edits_from_field(raw: Any, n: int) -> list[Edit]:
    if not isinstance(raw, list):
        raise PredictionShapeError("prediction.edits is not a list")
    edits: list[Edit] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise PredictionShapeError(f"prediction.edits[{i}] is not an object")
        start, end, text = item.get("start"), item.get("end"), item.get("text")
        if not isinstance(start, int) or not isinstance(end, int) or not isinstance(text, str):
            raise PredictionShapeError(f"prediction.edits[{i}] needs integer start/end and string text")
        if not 0 <= start <= end <= n:
            raise PredictionShapeError(f"prediction.edits[{i}] [{start}, {end}) is outside the excerpt (length {n})")
        edits.append(Edit(start, end, text))
    edits.sort(key=lambda e: (e.start, e.end))
    for a, b in pairwise(edits):
        if b.start < a.end:
            raise PredictionShapeError(f"prediction.edits overlap at [{b.start}, {a.end})")
    return edits


def diff_edits(old: str, new: str) -> list[Edit]:
    """The char-level edits that turn `old` into `new`, grouped by line runs (offsets into `old`)."""
    if old == new:
        return []
    a, b = patchlib.split_lines(old), patchlib.split_lines(new)
    a_starts = [0]
    for line in a:
        a_starts.append(a_starts[-1] + len(line))
    edits: list[Edit] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old_part, new_part = "".join(a[i1:i2]), "".join(b[j1:j2])
        base = a_starts[i1]
        inner = difflib.SequenceMatcher(None, old_part, new_part, autojunk=False)
        for t, x1, x2, y1, y2 in inner.get_opcodes():
            if t != "equal":
                edits.append(Edit(base + x1, base + x2, new_part[y1:y2]))
    return edits


def prediction_edits(prediction: dict[str, Any], snapshot: Snapshot) -> list[Edit]:
    """The edits of a server prediction in char offsets of `snapshot.text`, sorted and non-overlapping.

    Uses `edits` when present, else applies `patch` to the excerpt and diffs. Edits that change
    nothing are dropped. Raises PredictionShapeError for edits/patches that do not fit."""
    text = snapshot.text
    if prediction.get("edits") is not None:
        edits = _edits_from_field(prediction["edits"], len(text))
    else:
        patch = prediction.get("patch")
        if not isinstance(patch, str):
            raise PredictionShapeError("prediction has neither edits nor a patch")
        if not patch.strip():
            return []
        try:
            new = patchlib.apply(patch, text, start_line=snapshot.start_line)
        except patchlib.PatchError as exc:
            raise PredictionShapeError(f"prediction.patch does not apply to the snapshot: {exc}") from exc
        edits = diff_edits(text, new)
    return [e for e in edits if text[e.start:e.end] != e.text]


def to_document(edits: list[Edit], offset: int) -> list[Edit]:
    """Edits into the excerpt shifted to document char offsets."""
    return [Edit(e.start + offset, e.end + offset, e.text) for e in edits]


def span(edits: list[Edit], text: str) -> Edit:
    """One edit covering all of `edits` (sorted, non-empty): [first start, last end) and its new text."""
    start, end = edits[0].start, edits[-1].end
    parts: list[str] = []
    pos = start
    for e in edits:
        parts.append(text[pos:e.start])
        parts.append(e.text)
        pos = e.end
    return Edit(start, end, "".join(parts))


__all__ = ["BuiltSnapshot", "Edit", "ExcerptError", "PredictionShapeError", "build_snapshot",
           "diff_edits", "prediction_edits", "span", "to_document"]
