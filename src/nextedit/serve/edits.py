"""Character-offset edits ({start, end, text}) between two texts, for editors that apply ranges."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import TypedDict

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
#: Changed blocks longer than this (characters) are not refined to token edits.
REFINE_MAX_CHARS = 4000


class Edit(TypedDict):
    """Replace old[start:end] with text (offsets are Python characters of the old text)."""

    start: int
    end: int
    text: str


def char_edits(old: str, new: str, *, offset: int = 0) -> list[Edit]:
    """Small non-overlapping edits turning `old` into `new`, in order, offsets shifted by `offset`.

    Lines are matched first; each changed block is then narrowed to the characters that differ
    (common prefix and suffix trimmed) and, when small, split into token-level edits, so renaming
    a word three times on one line gives three one-word edits.
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
        base = offset + starts[i1] + p
        edits.extend(_refine(o[p:len(o) - s], n[p:len(n) - s], base))
    return edits


def _refine(o: str, n: str, base: int) -> list[Edit]:
    """Token-level edits of one changed block (one edit for the whole block when it is large)."""
    if not o or not n or len(o) + len(n) > REFINE_MAX_CHARS:
        return [Edit(start=base, end=base + len(o), text=n)]
    a, b = _TOKEN.findall(o), _TOKEN.findall(n)
    pos = [0]
    for tok in a:
        pos.append(pos[-1] + len(tok))
    out: list[Edit] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            out.append(Edit(start=base + pos[i1], end=base + pos[i2], text="".join(b[j1:j2])))
    return out


def apply_edits(text: str, edits: list[Edit]) -> str:
    """`text` with the edits applied (they must be sorted and non-overlapping)."""
    out, last = [], 0
    for e in edits:
        out += [text[last:e["start"]], e["text"]]
        last = e["end"]
    return "".join(out) + text[last:]
