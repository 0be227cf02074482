"""Kept rate / recall rate: how much of a predicted change survives in the reference (zed-ep.md 3.4)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from operator import or_

from rapidfuzz.distance import Indel

from nextedit.metrics.text import line_safe_trim
from nextedit.metrics.tokenize import units

__all__ = ["DIRTY_GUARD_BYTES", "KEPT_RATE_SIGNATURE", "KeptRate", "kept_rate"]

#: Dirty-final guard: candidate and reference length changes differing by more than this many
#: UTF-8 bytes score 0 (the reference was edited far beyond the prediction).
DIRTY_GUARD_BYTES = 512
KEPT_RATE_SIGNATURE = f"kept_rate:v1|units=words|count=utf8_bytes|guard={DIRTY_GUARD_BYTES}|lcs=indel"


@dataclass(frozen=True)
class KeptRate:
    """Kept and recall rates with the UTF-8 byte counts behind them."""

    kept_rate: float
    recall_rate: float
    kept_chars: int
    correctly_deleted_chars: int
    discarded_chars: int
    candidate_new_chars: int
    candidate_deleted_chars: int
    reference_new_chars: int
    reference_deleted_chars: int
    context_chars: int
    signature: str = KEPT_RATE_SIGNATURE


def _nbytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _split(base_units: list[str], other_units: list[str]) -> tuple[list[str], list[bool]]:
    """Units of `other` not in the LCS with base (new), and for each base unit whether it survived."""
    kept_base = [False] * len(base_units)
    new: list[str] = []
    for op in Indel.opcodes(base_units, other_units):
        if op.tag == "equal":
            kept_base[op.src_start:op.src_end] = [True] * (op.src_end - op.src_start)
        elif op.tag == "insert":
            new.extend(other_units[op.dest_start:op.dest_end])
    return new, kept_base


def kept_rate(base: str, candidate: str, reference: str, *, windowed: bool = True) -> KeptRate:
    """Kept rate = (kept new bytes + correctly deleted bytes) / bytes the candidate changed;
    recall rate = the same over the bytes the reference changed.

    Units are `tokenize.units` (identifiers whole, other tokens alone); new units are those
    outside the LCS with `base`; kept units are the LCS of candidate-new and reference-new
    units. All counts are UTF-8 bytes. `windowed=False` skips trimming the shared prefix and
    suffix lines first (same result, slower; the definition, kept for tests).
    """
    if base == candidate == reference:
        nb = _nbytes(base)
        return KeptRate(1.0, 1.0, 0, 0, 0, 0, 0, 0, 0, nb)
    lb, lc, lr = _nbytes(base), _nbytes(candidate), _nbytes(reference)
    if abs(abs(lc - lb) - abs(lr - lb)) > DIRTY_GUARD_BYTES:
        d = abs(lc - lb)
        return KeptRate(0.0, 0.0, 0, 0, d, d, 0, 0, 0, 0)
    prefix, suffix = line_safe_trim(base, candidate, reference) if windowed else (0, 0)
    head = _nbytes(base[:prefix]) + _nbytes(base[len(base) - suffix:])
    b, c, r = (t[prefix:len(t) - suffix] for t in (base, candidate, reference))
    bu, cu, ru = units(b), units(c), units(r)
    ascii_only = b.isascii() and c.isascii() and r.isascii()
    size = len if ascii_only else _nbytes  # UTF-8 bytes of a unit
    cand_new, cand_kept_base = _split(bu, cu)
    ref_new, ref_kept_base = _split(bu, ru)
    kept = 0
    if cand_new and ref_new:
        for op in Indel.opcodes(cand_new, ref_new):
            if op.tag == "equal":
                kept += sum(map(size, cand_new[op.src_start:op.src_end]))
    cand_new_b = sum(map(size, cand_new))
    ref_new_b = sum(map(size, ref_new))
    base_b = list(map(size, bu))
    total = sum(base_b)
    context = sum(compress(base_b, cand_kept_base))
    cand_del = total - context
    ref_del = total - sum(compress(base_b, ref_kept_base))
    both_del = total - sum(compress(base_b, map(or_, cand_kept_base, ref_kept_base)))
    good = kept + both_del
    cand_total, ref_total = cand_new_b + cand_del, ref_new_b + ref_del
    kr = good / cand_total if cand_total else (1.0 if ref_total == 0 else 0.0)
    rr = good / ref_total if ref_total else (1.0 if cand_total == 0 else 0.0)
    return KeptRate(kr, rr, kept, both_del, cand_new_b - kept, cand_new_b, cand_del, ref_new_b,
                    ref_del, context + head)
