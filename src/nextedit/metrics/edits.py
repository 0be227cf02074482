"""Granular edits between two texts: a line diff refined to tokens, pure extensions split to chars."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from rapidfuzz.distance import Indel, LCSseq

from nextedit.metrics.text import common_prefix, common_suffix
from nextedit.metrics.tokenize import tokenize

__all__ = ["REFINE_MAX_BYTES", "REFINE_MAX_LINES", "Edit", "granular_edits", "split_lines"]

#: Line-diff hunks are refined to a token diff when both sides are at most this big.
REFINE_MAX_BYTES = 512
REFINE_MAX_LINES = 8


@dataclass(frozen=True)
class Edit:
    """Replace `old[old_start:old_end]` by `new[new_start:new_end]` (character offsets)."""

    old_start: int
    old_end: int
    new_start: int
    new_end: int
    old_text: str
    new_text: str


def split_lines(text: str) -> list[str]:
    """Lines with their `\\n` kept (split on `\\n` only); joining them gives back `text`."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _offsets(pieces: list[str], base: int = 0) -> list[int]:
    return list(accumulate(map(len, pieces), initial=base))


def _blocks(a: list[str], b: list[str]) -> list[tuple[int, int, int, int]]:
    """Maximal non-equal runs (i1, i2, j1, j2) of an LCS alignment of two sequences."""
    out: list[tuple[int, int, int, int]] = []
    cur: list[int] | None = None
    for op in Indel.opcodes(a, b):
        if op.tag == "equal":
            if cur:
                out.append((cur[0], cur[1], cur[2], cur[3]))
                cur = None
        elif cur is None:
            cur = [op.src_start, op.src_end, op.dest_start, op.dest_end]
        else:
            cur[1], cur[3] = op.src_end, op.dest_end
    if cur:
        out.append((cur[0], cur[1], cur[2], cur[3]))
    return out


def _small(text: str) -> bool:
    return len(text.encode("utf-8")) <= REFINE_MAX_BYTES and text.count("\n") <= REFINE_MAX_LINES


def _char_split(e: Edit) -> list[Edit]:
    """A pure extension (old is a subsequence of new) becomes its char insertions; a pure
    reduction its char deletions; any other edit stays whole."""
    o, n = e.old_text, e.new_text
    if not o or not n:
        return [e]
    shorter = o if len(o) <= len(n) else n
    if LCSseq.similarity(o, n) != len(shorter):
        return [e]
    out = []
    for i1, i2, j1, j2 in _blocks(o, n):  # type: ignore[arg-type]
        out.append(Edit(e.old_start + i1, e.old_start + i2, e.new_start + j1, e.new_start + j2,
                        o[i1:i2], n[j1:j2]))
    return out


def granular_edits(old: str, new: str) -> list[Edit]:
    """Edits turning `old` into `new`: LCS line diff; a hunk with both sides non-empty and at most
    512 bytes / 8 lines is refined to a token diff; then each pure extension or reduction is
    split into its character insertions or deletions (`epr` -> `eprintln!()` inserts `intln!()`)."""
    if old == new:
        return []
    # Shared whole lines at both ends take no part in the diff: cut them off first.
    p = common_prefix(old, new)
    head = old.rfind("\n", 0, p) + 1
    s = common_suffix(old, new, min(len(old), len(new)) - head)
    nl = old.find("\n", len(old) - s)
    tail = len(old) - (nl + 1) if nl != -1 else 0
    la, lb = split_lines(old[head:len(old) - tail]), split_lines(new[head:len(new) - tail])
    oa, ob = _offsets(la, head), _offsets(lb, head)
    edits: list[Edit] = []
    for i1, i2, j1, j2 in _blocks(la, lb):
        s_old, s_new = oa[i1], ob[j1]
        o, n = old[s_old:oa[i2]], new[s_new:ob[j2]]
        if o and n and _small(o) and _small(n):
            ta, tb = tokenize(o), tokenize(n)
            ta_off, tb_off = _offsets(ta, s_old), _offsets(tb, s_new)
            for k1, k2, m1, m2 in _blocks(ta, tb):
                edit = Edit(ta_off[k1], ta_off[k2], tb_off[m1], tb_off[m2],
                            old[ta_off[k1]:ta_off[k2]], new[tb_off[m1]:tb_off[m2]])
                edits.extend(_char_split(edit))
        else:
            edits.extend(_char_split(Edit(s_old, oa[i2], s_new, ob[j2], o, n)))
    return edits
