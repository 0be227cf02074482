"""delta-chrF: character n-gram F-score of the change a prediction makes vs the reference change."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from nextedit.metrics.text import common_prefix, common_suffix

__all__ = [
    "VARIANTS",
    "ChrFVariant",
    "DeltaChrF",
    "changed_windows",
    "delta_chrf",
    "normalize_whitespace",
]


@dataclass(frozen=True)
class ChrFVariant:
    """One versioned way of computing delta-chrF."""

    name: str
    n: int
    beta: float
    ws: str  # "collapse" or "remove"

    @property
    def signature(self) -> str:
        return f"delta_chrf:{self.name}|n={self.n}|beta={self.beta:g}|ws={self.ws}"


#: v3 is the default (Zed's newest: precision-weighted, whitespace collapsed); v1 is the variant
#: behind published Zeta 2 numbers (beta 2, whitespace removed). Numbers of different variants
#: are not comparable.
VARIANTS: dict[str, ChrFVariant] = {
    "v3": ChrFVariant("v3", 6, 0.5, "collapse"),
    "v2": ChrFVariant("v2", 6, 2.0, "collapse"),
    "v1": ChrFVariant("v1", 6, 2.0, "remove"),
}


@dataclass(frozen=True)
class DeltaChrF:
    """A delta-chrF result: score 0..100, mean precision/recall over orders, summed TP/FP/FN."""

    score: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    beta: float
    signature: str


_SPACES = re.compile(r"[^\S\r\n]+")
_NEWLINES = re.compile(r"[\r\n]+")
_ALL_WS = re.compile(r"\s+")


def normalize_whitespace(text: str, ws: str) -> str:
    """`collapse`: runs of non-newline whitespace -> one space, runs of `\\r`/`\\n` -> one `\\n`;
    `remove`: drop all whitespace."""
    if ws == "collapse":
        return _NEWLINES.sub("\n", _SPACES.sub(" ", text))
    if ws == "remove":
        return _ALL_WS.sub("", text)
    raise ValueError(f"unknown whitespace mode {ws!r} (expected 'collapse' or 'remove')")


def changed_windows(original: str, other: str, context: int) -> tuple[str, str]:
    """The changed span of `original` vs `other` plus `context` chars each side, in both texts.

    N-grams of order <= context + 1 that lie wholly outside these windows occur identically in
    both texts, so n-gram count differences of the windows equal those of the full texts.
    """
    if original == other:
        return "", ""
    p = common_prefix(original, other)
    s = common_suffix(original, other, min(len(original), len(other)) - p)
    start = max(0, p - context)
    return (original[start:len(original) - s + context], other[start:len(other) - s + context])


def _left_edge(text: str, pos: int, need: int) -> int:
    """A start <= pos with >= `need` non-space chars (a whitespace run counts as 0) before pos,
    never inside a whitespace run, so normalizing text[start:] equals normalizing its tail."""
    i, seen = pos, 0
    while i > 0 and seen < need:
        i -= 1
        if not text[i].isspace():
            seen += 1
    while 0 < i < len(text) and text[i - 1].isspace():
        i -= 1
    return i


def _right_edge(text: str, pos: int, need: int) -> int:
    """An end >= pos with >= `need` non-space chars after pos, never inside a whitespace run."""
    i, seen, n = pos, 0, len(text)
    while i < n and seen < need:
        if not text[i].isspace():
            seen += 1
        i += 1
    while 0 < i < n and text[i].isspace():
        i += 1
    return i


def _normalized_windows(original: str, other: str, ws: str, context: int) -> tuple[str, str]:
    """Whitespace-normalized changed windows of (original, other), cut from the raw texts at
    whitespace-run boundaries with >= `context` non-space chars each side (same n-gram deltas as
    normalizing the full texts first; only the windows are normalized)."""
    if original == other:
        return "", ""
    p = common_prefix(original, other)
    s = common_suffix(original, other, min(len(original), len(other)) - p)
    start = _left_edge(original, p, context)
    end = _right_edge(original, len(original) - s, context)
    tail = len(original) - end
    return (normalize_whitespace(original[start:end], ws),
            normalize_whitespace(other[start:len(other) - tail], ws))


def _delta(before: str, after: str, n_max: int, *, trim: bool = True) -> list[dict[str, int]]:
    """Per order n = 1..n_max: count_after(g) - count_before(g) for every char n-gram g, zeros dropped.

    N-grams lying wholly inside the shared prefix or the shared suffix cancel out, so only those
    that end past the prefix and start before the suffix are counted (one pass for all orders;
    the order of an n-gram is its length). `trim=False` counts every n-gram of both texts.
    """
    p = common_prefix(before, after) if trim else 0
    s = common_suffix(before, after, min(len(before), len(after)) - p) if trim else 0
    lo = max(0, p - n_max + 1)
    la, lb = len(after), len(before)
    ca = Counter([after[i:j] for i in range(lo, la - s)
                  for j in range(max(i + 1, p + 1), min(i + n_max, la) + 1)])
    cb = Counter([before[i:j] for i in range(lo, lb - s)
                  for j in range(max(i + 1, p + 1), min(i + n_max, lb) + 1)])
    out: list[dict[str, int]] = [{} for _ in range(n_max)]
    for g, c in ca.items():
        c -= cb.pop(g, 0)
        if c:
            out[len(g) - 1][g] = c
    for g, c in cb.items():
        out[len(g) - 1][g] = -c
    return out


def _compare(expected: dict[str, int], actual: dict[str, int]) -> tuple[int, int, int]:
    """TP/FP/FN of two signed n-gram deltas of one order (a negative count is a deletion token)."""
    size_e = sum(map(abs, expected.values()))
    size_a = sum(map(abs, actual.values()))
    if expected == actual:
        return size_e, 0, 0
    tp = 0
    for g in expected.keys() & actual.keys():
        e, a = expected[g], actual[g]
        if e > 0 and a > 0:
            tp += min(e, a)
        elif e < 0 and a < 0:
            tp += -a if a > e else -e
    return tp, size_a - tp, size_e - tp


def delta_chrf(original: str, expected: str, actual: str, *, variant: str = "v3",
               windowed: bool = True) -> DeltaChrF:
    """chrF between the change `original -> expected` and the change `original -> actual`.

    Per order n (1..6): signed n-gram count deltas of each side; TP/FP/FN of the two deltas;
    P_n, R_n (both 1 when neither side changes n-grams of that order); P, R = means over orders;
    score = 100 (1 + b^2) P R / (b^2 P + R). `windowed=False` computes the same result by counting
    every n-gram of the full texts (slower; kept for tests and as the definition).
    """
    try:
        v = VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown delta_chrf variant {variant!r} (known: {', '.join(VARIANTS)})") from None
    if original == expected == actual:
        return DeltaChrF(100.0, 1.0, 1.0, 0, 0, 0, v.beta, v.signature)
    if windowed:
        oe, ee = _normalized_windows(original, expected, v.ws, v.n - 1)
        oa, aa = _normalized_windows(original, actual, v.ws, v.n - 1)
    else:
        oe, oa = (normalize_whitespace(original, v.ws),) * 2
        ee, aa = normalize_whitespace(expected, v.ws), normalize_whitespace(actual, v.ws)
    empty: list[dict[str, int]] = [{}] * v.n
    de = _delta(oe, ee, v.n, trim=windowed) if oe != ee else empty
    da = _delta(oa, aa, v.n, trim=windowed) if oa != aa else empty
    p_sum = r_sum = 0.0
    tp_sum = fp_sum = fn_sum = 0
    for tp, fp, fn in map(_compare, de, da):
        if tp == fp == fn == 0:  # neither side changes n-grams of this order
            p_sum += 1.0
            r_sum += 1.0
            continue
        tp_sum, fp_sum, fn_sum = tp_sum + tp, fp_sum + fp, fn_sum + fn
        p_sum += tp / (tp + fp) if tp + fp else 0.0
        r_sum += tp / (tp + fn) if tp + fn else 0.0
    p, r = p_sum / v.n, r_sum / v.n
    b2 = v.beta * v.beta
    score = 100.0 * (1 + b2) * p * r / (b2 * p + r) if p + r > 0 else 0.0
    return DeltaChrF(score, p, r, tp_sum, fp_sum, fn_sum, v.beta, v.signature)
