"""delta-chrF: character n-gram F-score of the change a prediction makes vs the reference change."""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate

import numpy as np
from rapidfuzz.distance import Indel

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


#: Whitespace other than " " and "\\n" in ASCII text (what `\\s` and `str.isspace` match).
_OTHER_ASCII_WS = ("\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


@functools.lru_cache(maxsize=64)
def normalize_whitespace(text: str, ws: str) -> str:
    """`collapse`: runs of non-newline whitespace -> one space, runs of `\\r`/`\\n` -> one `\\n`;
    `remove`: drop all whitespace."""
    if ws not in ("collapse", "remove"):
        raise ValueError(f"unknown whitespace mode {ws!r} (expected 'collapse' or 'remove')")
    if text.isascii() and not any(c in text for c in _OTHER_ASCII_WS):
        # Only " " and "\n": plain replaces (C speed) instead of a regex over every char.
        if ws == "remove":
            return text.replace(" ", "").replace("\n", "")
        text = text.replace("    ", " ")
        while "  " in text:
            text = text.replace("  ", " ")
        while "\n\n" in text:
            text = text.replace("\n\n", "\n")
        return text
    if ws == "collapse":
        return _NEWLINES.sub("\n", _SPACES.sub(" ", text))
    return _ALL_WS.sub("", text)


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


#: Below this many chars in the four windows, counting substrings in Python is faster.
_NUMPY_MIN_CHARS = 400


def _codes(texts: tuple[str, ...], n_max: int) -> tuple[list[np.ndarray], int] | None:
    """Each text as int64 digits >= 1 of `bits` bits (code points, or their ranks when large);
    None when the texts hold too many distinct chars for exact int64 n-gram keys (n_max digits
    of `bits` bits, the order above them in 3 bits)."""
    max_bits = (63 - 3) // n_max
    arrs = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.int64) for t in texts]
    top = max((int(a.max()) for a in arrs if a.size), default=0)
    if (top + 1).bit_length() > max_bits:
        alphabet, inverse = np.unique(np.concatenate(arrs), return_inverse=True)
        top = len(alphabet) - 1
        if (top + 1).bit_length() > max_bits:
            return None
        arrs = np.split(inverse.astype(np.int64), list(accumulate(len(a) for a in arrs))[:-1])
    return [a + 1 for a in arrs], (top + 1).bit_length()


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for each pair (no Python loop)."""
    lens = ends - starts
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return np.arange(int(lens.sum())) + offsets


def _first_mismatch(a: np.ndarray, ia: np.ndarray, b: np.ndarray, ib: np.ndarray,
                    m: np.ndarray, step: int) -> np.ndarray:
    """Per block k: how many of a[ia[k] + step*i] == b[ib[k] + step*i] hold for i = 0, 1, ...
    before the first inequality, at most m[k]."""
    out = np.zeros(m.size, dtype=np.int64)
    live = np.flatnonzero(m > 0)
    if not live.size:
        return out
    mm = m[live]
    within = _ranges(np.zeros_like(mm), mm)
    block = np.repeat(np.arange(live.size), mm)
    eq = a[ia[live][block] + step * within] == b[ib[live][block] + step * within]
    starts = np.cumsum(mm) - mm
    out[live] = np.minimum(np.minimum.reduceat(np.where(eq, mm[block], within), starts), mm)
    return out


def _hunk_digits(before: str, after: str, cb: np.ndarray, ca: np.ndarray,
                 context: int) -> tuple[np.ndarray, np.ndarray]:
    """The digits of each changed span of `before -> after` plus `context` chars each side,
    concatenated per text.

    Spans come from a line diff, each changed block narrowed to its own common prefix/suffix;
    blocks closer than `context` chars are merged. N-grams of order <= context + 1 touching a
    span lie in its window and touch no other span; every other n-gram of the concatenations
    (inside a shared context, or across two windows' full shared contexts) occurs in both. So
    the n-gram count differences of the concatenations equal those of the full texts.
    """
    lb, la = before.splitlines(keepends=True), after.splitlines(keepends=True)
    ops = [op[1:] for op in Indel.opcodes(lb, la).as_list() if op[0] != "equal"]
    if not ops:
        return cb[:0], ca[:0]
    bo = np.cumsum(np.fromiter(map(len, lb), dtype=np.int64, count=len(lb)))
    ao = np.cumsum(np.fromiter(map(len, la), dtype=np.int64, count=len(la)))
    bo, ao = np.concatenate(([0], bo)), np.concatenate(([0], ao))
    i1, i2, j1, j2 = np.array(ops, dtype=np.int64).T
    b0, b1, a0, a1 = bo[i1], bo[i2], ao[j1], ao[j2]
    m = np.minimum(b1 - b0, a1 - a0)
    p = _first_mismatch(cb, b0, ca, a0, m, 1)
    s = _first_mismatch(cb, b1 - 1, ca, a1 - 1, m - p, -1)
    b0, a0, b1, a1 = b0 + p, a0 + p, b1 - s, a1 - s
    first = np.flatnonzero(np.concatenate(([True], b0[1:] - b1[:-1] >= context)))
    last = np.concatenate((first[1:] - 1, [b0.size - 1]))
    b0, a0, b1, a1 = b0[first], a0[first], b1[last], a1[last]
    ib = _ranges(np.maximum(b0 - context, 0), np.minimum(b1 + context, cb.size))
    ia = _ranges(np.maximum(a0 - context, 0), np.minimum(a1 + context, ca.size))
    return cb[ib], ca[ia]


def _np_delta(before: np.ndarray, after: np.ndarray, bits: int, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys of the n-grams (orders 1..n_max) whose count differs, and count_after - count_before.

    One sort: each position gets a fixed-width key of its next n_max digits (0 past the end);
    sorted, these keys are also sorted by every prefix, so the n-grams of order n are runs of
    keys sharing their first n digits, and a key starts a run of order n exactly when it shares
    fewer than n leading digits with the key before it. An n-gram of order n is reported as its
    digits plus n in the bits above all digits (order = key >> bits * n_max).
    """
    tagged = np.concatenate([_wide_keys(after, bits, n_max) << 1,
                             (_wide_keys(before, bits, n_max) << 1) | 1])
    size = tagged.size
    if not size:
        return tagged, tagged
    tagged.sort()
    wide = tagged >> 1
    running = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(1 - 2 * (tagged & 1), out=running[1:])  # +1 per `after` key, -1 per `before` key
    shared = np.zeros(size, dtype=np.int64)  # leading digits shared with the previous key
    change = wide[1:] ^ wide[:-1]
    for n in range(1, n_max + 1):
        shared[1:] += change < (1 << bits * (n_max - n))
    runs = n_max - shared  # this key starts a run of every order shared+1..n_max
    pos = np.repeat(np.arange(size), runs)
    order = (np.arange(pos.size) - np.repeat(np.cumsum(runs) - runs, runs)) + np.repeat(shared + 1, runs)
    by_order = np.argsort(order.astype(np.int8), kind="stable")
    pos, order = pos[by_order], order[by_order]
    ends = np.append(pos[1:], size)
    ends[:-1][order[1:] != order[:-1]] = size  # the last run of each order ends at the end
    diff = running[ends] - running[pos]
    keys = (wide[pos] >> bits * (n_max - order)) | (order << bits * n_max)
    keep = (diff != 0) & ((keys & ((1 << bits) - 1)) != 0)  # a prefix ending in padding is no n-gram
    return keys[keep], diff[keep]


def _wide_keys(digits: np.ndarray, bits: int, n_max: int) -> np.ndarray:
    """Per position, its next n_max digits packed `bits` bits each, first most significant (0 past the end)."""
    padded = np.concatenate([digits, np.zeros(n_max - 1, dtype=np.int64)])
    k = digits.copy()
    for j in range(1, n_max):
        k <<= bits
        k |= padded[j:j + digits.size]
    return k


def _order_sums(keys: np.ndarray, values: np.ndarray, bits: int, n_max: int) -> list[int]:
    """Per order 1..n_max, the sum of `values` over sorted `keys` of that order."""
    bounds = np.searchsorted(keys, np.arange(1, n_max + 2, dtype=np.int64) << bits * n_max)
    running = np.zeros(values.size + 1, dtype=np.int64)
    np.cumsum(values, out=running[1:])
    return (running[bounds[1:]] - running[bounds[:-1]]).tolist()


def _np_compare(de: tuple[np.ndarray, np.ndarray], da: tuple[np.ndarray, np.ndarray],
                bits: int, n_max: int) -> list[tuple[int, int, int]]:
    """`_compare` of every order at once on (keys, deltas) from `_np_delta`."""
    (ke, ve), (ka, va) = de, da
    size_e = _order_sums(ke, np.abs(ve), bits, n_max)
    size_a = _order_sums(ka, np.abs(va), bits, n_max)
    both = np.concatenate([ke, ka])
    order = np.argsort(both, kind="stable")  # merges two sorted runs; `ke`'s copy of a key first
    merged = both[order]
    pair = np.flatnonzero(merged[1:] == merged[:-1])
    e, a = ve[order[pair]], va[order[pair + 1] - ke.size]
    hit = np.where((e > 0) == (a > 0), np.minimum(np.abs(e), np.abs(a)), 0)
    tp = _order_sums(merged[pair], hit, bits, n_max)
    return [(t, sa - t, se - t) for t, sa, se in zip(tp, size_a, size_e)]


def _counts_numpy(oe: str, ee: str, oa: str, aa: str, n_max: int) -> list[tuple[int, int, int]] | None:
    """Per-order TP/FP/FN of the deltas `oe -> ee` and `oa -> aa`, counted with int64 keys over
    the changed spans only; None when the texts have too many distinct chars."""
    same_original = oe == oa
    coded = _codes((oe, ee, aa) if same_original else (oe, ee, oa, aa), n_max)
    if coded is None:
        return None
    digits, bits = coded
    co_e, ce, ca = digits[0], digits[1], digits[-1]
    co_a = co_e if same_original else digits[2]
    de = _np_delta(*_hunk_digits(oe, ee, co_e, ce, n_max - 1), bits, n_max)
    da = _np_delta(*_hunk_digits(oa, aa, co_a, ca, n_max - 1), bits, n_max)
    return _np_compare(de, da, bits, n_max)


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
    counts = None
    if windowed and len(oe) + len(ee) + len(oa) + len(aa) >= _NUMPY_MIN_CHARS:
        counts = _counts_numpy(oe, ee, oa, aa, v.n)
    if counts is None:
        empty: list[dict[str, int]] = [{}] * v.n
        de = _delta(oe, ee, v.n, trim=windowed) if oe != ee else empty
        da = _delta(oa, aa, v.n, trim=windowed) if oa != aa else empty
        counts = list(map(_compare, de, da))
    p_sum = r_sum = 0.0
    tp_sum = fp_sum = fn_sum = 0
    for tp, fp, fn in counts:
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
