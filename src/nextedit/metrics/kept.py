"""Kept rate / recall rate: how much of a predicted change survives in the reference (zed-ep.md 3.4)."""

from __future__ import annotations

from dataclasses import dataclass

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
    cand_new, cand_kept_base = _split(bu, cu)
    ref_new, ref_kept_base = _split(bu, ru)
    kept = 0
    if cand_new and ref_new:
        for op in Indel.opcodes(cand_new, ref_new):
            if op.tag == "equal":
                kept += sum(_nbytes(u) for u in cand_new[op.src_start:op.src_end])
    cand_new_b = sum(_nbytes(u) for u in cand_new)
    ref_new_b = sum(_nbytes(u) for u in ref_new)
    cand_del = ref_del = both_del = context = 0
    for u, ck, rk in zip(bu, cand_kept_base, ref_kept_base):
        nb = _nbytes(u)
        if ck:
            context += nb
        else:
            cand_del += nb
            if not rk:
                both_del += nb
        if not rk:
            ref_del += nb
    good = kept + both_del
    cand_total, ref_total = cand_new_b + cand_del, ref_new_b + ref_del
    kr = good / cand_total if cand_total else (1.0 if ref_total == 0 else 0.0)
    rr = good / ref_total if ref_total else (1.0 if cand_total == 0 else 0.0)
    return KeptRate(kr, rr, kept, both_del, cand_new_b - kept, cand_new_b, cand_del, ref_new_b,
                    ref_del, context + head)
