"""Normalized Levenshtein similarity of the predicted vs the expected editable region."""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein

__all__ = ["LEVENSHTEIN_SIGNATURE", "levenshtein_similarity", "region_after"]

LEVENSHTEIN_SIGNATURE = "levenshtein:v1|unit=chars|norm=max_len|scope=editable"


def levenshtein_similarity(expected: str, actual: str) -> float:
    """1 - Levenshtein distance / max(len(expected), len(actual)), in 0..1 (1.0 for two empty texts)."""
    return float(Levenshtein.normalized_similarity(expected, actual))


def region_after(original: str, editable: tuple[int, int], edited: str) -> str:
    """The editable region of `edited` (= `original` after a patch), found by keeping the text
    before and after the region fixed; the whole of `edited` when the patch touched either."""
    start, end = editable
    tail = len(original) - end
    if (len(edited) >= start + tail and edited[:start] == original[:start]
            and edited[len(edited) - tail:] == original[end:]):
        return edited[start:len(edited) - tail]
    return edited
