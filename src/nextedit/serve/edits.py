"""Character-offset edits ({start, end, text}) between two texts, for editors that apply ranges."""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import TypedDict


class Edit(TypedDict):
    """Replace old[start:end] with text (offsets are Python characters of the old text)."""

    start: int
    end: int
    text: str


def char_edits(old: str, new: str, *, offset: int = 0) -> list[Edit]:
    """Small non-overlapping edits turning `old` into `new`, in order, offsets shifted by `offset`.

    Lines are matched first; each changed block is then narrowed to the characters that differ
    (common prefix and suffix trimmed), so a one-word rename is a one-word edit.
    """
    if old == new:
        return []
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    starts = [0]
    for line in a:
        starts.append(starts[-1] + len(line))
    edits: list[Edit] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        o, n = "".join(a[i1:i2]), "".join(b[j1:j2])
        p = 0
        while p < min(len(o), len(n)) and o[p] == n[p]:
            p += 1
        s = 0
        while s < min(len(o), len(n)) - p and o[len(o) - 1 - s] == n[len(n) - 1 - s]:
            s += 1
        edits.append(Edit(start=offset + starts[i1] + p, end=offset + starts[i1] + len(o) - s,
                          text=n[p:len(n) - s]))
    return edits


def apply_edits(text: str, edits: list[Edit]) -> str:
    """`text` with the edits applied (they must be sorted and non-overlapping)."""
    out, last = [], 0
    for e in edits:
        out += [text[last:e["start"]], e["text"]]
        last = e["end"]
    return "".join(out) + text[last:]
