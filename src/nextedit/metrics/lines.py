"""Exact lines: bag-of-changed-lines precision/recall between two unified diffs (zed-ep.md 3.2)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = ["EXACT_LINES_SIGNATURE", "ExactLines", "changed_line_bag", "exact_lines", "prf"]

EXACT_LINES_SIGNATURE = "exact_lines:v1|lines=signed|ws=exact|headers=skip"


@dataclass(frozen=True)
class ExactLines:
    """Multiset match of signed changed lines (`+x`, `-y`) of two patches."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    signature: str = EXACT_LINES_SIGNATURE


def changed_line_bag(patch: str | None) -> Counter[str]:
    """Multiset of `+`/`-` lines inside hunks, sign kept, newline dropped.

    File headers (`diff`, `index`, `---`/`+++` pairs) and `\\ No newline` markers are skipped;
    unlike Zed, a deleted line whose text starts with `--` still counts (headers are recognised
    by position, not by prefix alone).
    """
    bag: Counter[str] = Counter()
    if not patch:
        return bag
    lines = patch.split("\n")
    in_hunk = False
    for i, line in enumerate(lines):
        if line.startswith("@@"):
            in_hunk = True
        elif line.startswith("diff ") or (
            line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")
            and (not in_hunk or i + 2 >= len(lines) or lines[i + 2].startswith(("@@", "diff ", "index ")))
        ):
            in_hunk = False
        elif in_hunk and line[:1] in ("+", "-"):
            bag[line] += 1
    return bag


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1; all 1.0 when there is nothing on either side."""
    if tp == fp == fn == 0:
        return 1.0, 1.0, 1.0
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def exact_lines(expected_patch: str | None, actual_patch: str | None) -> ExactLines:
    """TP/FP/FN of the changed-line multisets (`TP = sum min`, excess in actual = FP, deficit = FN)."""
    e, a = changed_line_bag(expected_patch), changed_line_bag(actual_patch)
    tp = sum((e & a).values())
    fp = sum(a.values()) - tp
    fn = sum(e.values()) - tp
    return ExactLines(tp, fp, fn, *prf(tp, fp, fn))
