"""delta-chrF: character n-gram F-score of the change a prediction makes vs the reference change."""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate, pairwise

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
#: Per ASCII byte: whether it is whitespace, and what `collapse` turns it into before merging
#: runs (other blanks -> " ", "\\r" -> "\\n").
_IS_WS = np.zeros(256, dtype=bool)
_IS_WS[[ord(c) for c in (" ", "\n", *_OTHER_ASCII_WS)]] = True
_WS_TO = np.arange(256, dtype=np.uint8)
_WS_TO[[ord(c) for c in _OTHER_ASCII_WS]] = ord(" ")
_WS_TO[ord("\r")] = ord("\n")
#: From this many chars on, ASCII text is normalized as a byte array.
_NUMPY_NORMALIZE_CHARS = 256


@functools.lru_cache(maxsize=64)
def normalize_whitespace(text: str, ws: str) -> str:
    """`collapse`: runs of non-newline whitespace -> one space, runs of `\\r`/`\\n` -> one `\\n`;
    `remove`: drop all whitespace."""
    if ws not in ("collapse", "remove"):
        raise ValueError(f"unknown whitespace mode {ws!r} (expected 'collapse' or 'remove')")
    if text.isascii() and len(text) >= _NUMPY_NORMALIZE_CHARS:
        b = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        if ws == "remove":
            return b[~_IS_WS[b]].tobytes().decode("ascii")
        b = _WS_TO[b]
        keep = np.ones(b.size, dtype=bool)  # drop a blank or newline equal to the char before it
        np.not_equal(b[1:], b[:-1], out=keep[1:])
        keep[1:] |= ~_IS_WS[b[1:]]
        return b[keep].tobytes().decode("ascii")
    if text.isascii() and not any(c in text for c in _OTHER_ASCII_WS):
        # Only " " and "\\n": plain replaces (C speed) instead of a regex over every char.
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


def _trim(x: str, y: str) -> tuple[int, int]:
    """Common prefix and suffix lengths of `x` and `y` (never overlapping)."""
    p = common_prefix(x, y)
    return p, common_suffix(x, y, min(len(x), len(y)) - p)


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


def _normalized_windows(original: str, other: str, p: int, s: int, ws: str, context: int) -> tuple[str, str]:
    """Whitespace-normalized changed windows of (original, other) (common prefix `p`, suffix `s`),
    cut from the raw texts at whitespace-run boundaries with >= `context` non-space chars each
    side (same n-gram deltas as normalizing the full texts first; only the windows are normalized)."""
    if original == other:
        return "", ""
    start = _left_edge(original, p, context)
    end = _right_edge(original, len(original) - s, context)
    tail = len(original) - end
    return (normalize_whitespace(original[start:end], ws),
            normalize_whitespace(other[start:len(other) - tail], ws))


def _delta(before: str, after: str, n_max: int, p: int = 0, s: int = 0) -> list[dict[str, int]]:
    """Per order n = 1..n_max: count_after(g) - count_before(g) for every char n-gram g, zeros dropped.

    `p`, `s`: a common prefix and suffix length of the two texts. N-grams lying wholly inside the
    shared prefix or the shared suffix cancel out, so only those that end past the prefix and start
    before the suffix are counted (one pass for all orders; the order of an n-gram is its length).
    """
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


def _trimmed_delta(before: str, after: str, n_max: int) -> list[dict[str, int]]:
    """`_delta` of two texts, skipping their common prefix and suffix."""
    return _delta(before, after, n_max, *_trim(before, after))


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


#: Which deltas are counted: (x, y, cE, cA) adds the n-gram count changes of texts[x] -> texts[y]
#: (texts = original, expected, actual) to channel E (original -> expected) with weight cE and to
#: channel A (original -> actual) with weight cA. Any two of the three pairwise deltas give the
#: third (original -> actual = original -> expected + expected -> actual), so the largest is skipped.
_Plan = tuple[tuple[int, int, int, int], ...]
_SKIP = {(1, 2): ((0, 1, 1, 0), (0, 2, 0, 1)), (0, 2): ((0, 1, 1, 1), (1, 2, 0, 1)),
         (0, 1): ((0, 2, 1, 1), (1, 2, -1, 0))}


def _plan(texts: tuple[str, str, str]) -> _Plan:
    """The deltas to count for whitespace-normalized (original, expected, actual)."""
    o, e, a = texts
    if e == a:
        return ((0, 1, 1, 1),)
    if o == a:
        return ((0, 1, 1, 0),)
    if o == e:
        return ((0, 2, 0, 1),)
    changed = {}
    for x, y in _SKIP:
        p, s = _trim(texts[x], texts[y])
        changed[x, y] = len(texts[x]) + len(texts[y]) - 2 * (p + s)
    return _SKIP[max(changed, key=changed.__getitem__)]


def _sums_python(texts: tuple[str, str, str], plan: _Plan, n_max: int) -> list[tuple[int, int, int]]:
    """Per order: sum over n-grams of |E|, |A| and |E - A| (channels of `plan`), counting substrings."""
    deltas = [_trimmed_delta(texts[x], texts[y], n_max) for x, y, _, _ in plan]
    out = []
    for n in range(n_max):
        (_, _, e1, a1), d1 = plan[0], deltas[0][n]
        s1 = sum(map(abs, d1.values()))
        se, sa, sd = abs(e1) * s1, abs(a1) * s1, abs(e1 - a1) * s1
        if len(plan) == 2:
            (_, _, e2, a2), d2 = plan[1], deltas[1][n]
            s2 = sum(map(abs, d2.values()))
            se, sa, sd = se + abs(e2) * s2, sa + abs(a2) * s2, sd + abs(e2 - a2) * s2
            for g in d1.keys() & d2.keys():  # n-grams both deltas change: their weights add up
                u, w = d1[g], d2[g]
                se += abs(e1 * u + e2 * w) - abs(e1 * u) - abs(e2 * w)
                sa += abs(a1 * u + a2 * w) - abs(a1 * u) - abs(a2 * w)
                sd += abs((e1 - a1) * u + (e2 - a2) * w) - abs((e1 - a1) * u) - abs((e2 - a2) * w)
        out.append((se, sa, sd))
    return out


#: Bits below the n-gram digits of a sorted key: the weight code of the position (9 values).
_CODE_BITS = 4
#: Translate table: byte b -> b + 1 (ASCII digits 1..128; 0 is the end-of-text digit).
_PLUS1 = bytes(range(1, 256)) + b"\0"
#: From this many chars in the changed windows of a delta on, a line diff narrows what is counted.
_SPAN_MIN_CHARS = 4096
#: Blocks of a line diff longer than this on average are not narrowed to their changed chars.
_NARROW_MAX_CHARS = 96
#: Up to this many changed blocks, a line diff's blocks are narrowed and merged in Python.
_FEW_BLOCKS = 8


def _encode(texts: dict[int, str], n_max: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], int] | None:
    """Per text i its chars as digits >= 1 and, per position, the next n_max digits packed `bits`
    bits each (first most significant; past the end of the text the digit 0, which no char uses);
    None when there are too many distinct chars for int64 keys."""
    digits: dict[int, np.ndarray] = {}
    wide: dict[int, np.ndarray] = {}
    if n_max * 8 + _CODE_BITS < 64 and all(t.isascii() for t in texts.values()):
        # One byte per char: read n_max bytes at every offset as one big-endian integer (all
        # texts in one buffer, each followed by 8 end-of-text bytes).
        buf = b"".join(t.encode("ascii").translate(_PLUS1) + bytes(8) for t in texts.values())
        every = np.frombuffer(buf, np.uint8)
        view = np.ndarray((len(buf) - 7,), ">u8", buf, strides=(1,))
        packed = (view >> (8 * (8 - n_max))).astype(np.int64)
        start = 0
        for i, t in texts.items():
            digits[i], wide[i] = every[start:start + len(t)], packed[start:start + len(t)]
            start += len(t) + 8
        return digits, wide, 8
    bits = (63 - _CODE_BITS) // n_max
    limit = 1 << bits
    arrs = {i: np.frombuffer(t.encode("utf-32-le"), np.uint32).astype(np.int64) for i, t in texts.items()}
    if max((int(a.max()) for a in arrs.values() if a.size), default=0) + 1 < limit:
        digits = {i: a + 1 for i, a in arrs.items()}
    else:
        alphabet, inverse = np.unique(np.concatenate(list(arrs.values())), return_inverse=True)
        if len(alphabet) + 1 >= limit:
            return None
        parts = np.split(inverse.astype(np.int64) + 1, np.cumsum([len(a) for a in arrs.values()])[:-1].tolist())
        digits = dict(zip(arrs, parts))
    for i, d in digits.items():
        padded = np.concatenate([d, np.zeros(n_max - 1, dtype=np.int64)])
        k = d.copy()
        for j in range(1, n_max):
            k <<= bits
            k |= padded[j:j + d.size]
        wide[i] = k
    return digits, wide, bits


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for each pair (no Python loop)."""
    if starts.size == 1:
        return np.arange(starts[0], ends[0])
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


def _spans(x: str, y: str, dx: np.ndarray, dy: np.ndarray,
           context: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Start offsets [lo, hi) in `x` and in `y` of every n-gram of order <= context + 1 that
    touches a change of x -> y (None when x == y).

    Changes come from a line diff, each changed block narrowed to its own common prefix/suffix
    (when blocks are short); blocks closer than `context` chars are merged. An n-gram starting
    outside these ranges, or starting in the `context` chars before a change without reaching it,
    lies in text both sides share at the same place, so it is counted in both texts or in neither.
    """
    lx, ly = x.splitlines(keepends=True), y.splitlines(keepends=True)
    ops = [op[1:] for op in Indel.opcodes(lx, ly).as_list() if op[0] != "equal"]
    if not ops:
        return None
    if len(ops) <= _FEW_BLOCKS:  # a few blocks: narrow and merge them in Python
        xo, yo = [0, *accumulate(map(len, lx))], [0, *accumulate(map(len, ly))]
        spans: list[list[int]] = []
        for i1, i2, j1, j2 in ops:
            x0, x1, y0, y1 = xo[i1], xo[i2], yo[j1], yo[j2]
            bx, by = x[x0:x1], y[y0:y1]
            p = common_prefix(bx, by)
            s = common_suffix(bx, by, min(len(bx), len(by)) - p)
            x0, y0, x1, y1 = x0 + p, y0 + p, x1 - s, y1 - s
            if spans and x0 - spans[-1][1] < context:
                spans[-1][1], spans[-1][3] = x1, y1
            else:
                spans.append([x0, x1, y0, y1])
        x0, x1, y0, y1 = np.array(spans, dtype=np.int64).T
        return np.maximum(x0 - context, 0), x1, np.maximum(y0 - context, 0), y1
    xo = np.concatenate(([0], np.cumsum(np.fromiter(map(len, lx), dtype=np.int64, count=len(lx)))))
    yo = np.concatenate(([0], np.cumsum(np.fromiter(map(len, ly), dtype=np.int64, count=len(ly)))))
    i1, i2, j1, j2 = np.array(ops, dtype=np.int64).T
    x0, x1, y0, y1 = xo[i1], xo[i2], yo[j1], yo[j2]
    if int(x1[-1] - x0[0]) <= _NARROW_MAX_CHARS * len(ops):
        m = np.minimum(x1 - x0, y1 - y0)
        p = _first_mismatch(dx, x0, dy, y0, m, 1)
        s = _first_mismatch(dx, x1 - 1, dy, y1 - 1, m - p, -1)
        x0, y0, x1, y1 = x0 + p, y0 + p, x1 - s, y1 - s
    first = np.flatnonzero(np.concatenate(([True], x0[1:] - x1[:-1] >= context)))
    last = np.concatenate((first[1:] - 1, [x0.size - 1]))
    x0, y0, x1, y1 = x0[first], y0[first], x1[last], y1[last]
    return np.maximum(x0 - context, 0), x1, np.maximum(y0 - context, 0), y1


def _position_keys(texts: tuple[str, str, str], plan: _Plan, n_max: int) -> tuple[np.ndarray, int] | None:
    """The keys of every position counted by the plan's deltas, and the digit bits; None when the
    texts have too many distinct chars.

    Delta k of the plan, x -> y, counts the n-grams starting in the changed windows of x and of y
    (past the common prefix less n_max - 1 chars, before the common suffix): with weight -1 in x
    and +1 in y, coded 3 (w1 + 1) + (w2 + 1) for weights w1, w2 of deltas 1 and 2. Windows over
    `_SPAN_MIN_CHARS` are narrowed to the changed spans of a line diff. N-grams starting
    elsewhere are the same in both texts and cancel out.
    """
    coded = _encode({i: texts[i] for x, y, _, _ in plan for i in (x, y)}, n_max)
    if coded is None:
        return None
    digits, wide, bits = coded
    parts: list[np.ndarray] = []  # n-gram digits of runs of positions
    codes: list[int] = []  # and the weight code of each run
    windows: dict[int, list[tuple[int, int, int]]] = {}  # per text: [lo, hi) and weight code offset
    for (x, y, _, _), c in zip(plan, (3, 1)):
        tx, ty = texts[x], texts[y]
        p, s = _trim(tx, ty)
        lo, hx, hy = max(0, p - n_max + 1), len(tx) - s, len(ty) - s
        if hx + hy - 2 * lo < _SPAN_MIN_CHARS:
            windows.setdefault(x, []).append((lo, hx, -c))
            windows.setdefault(y, []).append((lo, hy, c))
            continue
        spans = _spans(tx, ty, digits[x], digits[y], n_max - 1)
        if spans is not None:
            x0, x1, y0, y1 = spans
            parts += [wide[x][_ranges(x0, x1)], wide[y][_ranges(y0, y1)]]
            codes += [4 - c, 4 + c]
    for t, ws in windows.items():
        # Cut the text's windows into runs of one code (a text in both deltas: both offsets add up).
        cuts = sorted({v for a, b, _ in ws for v in (a, b)})
        for a, b in pairwise(cuts):
            parts.append(wide[t][a:b])
            codes.append(4 + sum(c for lo, hi, c in ws if lo <= a and b <= hi))
    if not parts:
        return np.zeros(0, dtype=np.int64), bits
    keys = np.concatenate(parts)
    keys <<= _CODE_BITS
    keys |= np.repeat(np.array(codes, dtype=np.int64), [part.size for part in parts])
    return keys, bits


def _sums_numpy(texts: tuple[str, str, str], plan: _Plan, n_max: int) -> list[tuple[int, int, int]] | None:
    """`_sums_python` with int64 n-gram keys sorted once for all orders; None when the texts have
    too many distinct chars.

    Sorted, equal keys are adjacent: positions with the same next n_max chars are merged first (their
    weights add up; most of an unchanged neighbourhood cancels to 0 and is dropped). The merged keys
    are unique, and those sharing their first n digits (one n-gram of order n) are adjacent, so the
    weight of each delta in each n-gram is a difference of running sums at the places where the
    number of leading digits shared with the previous key drops below n (all orders at once: one
    row per order); channels E, A and D = E - A are the plan's combinations of the deltas. A key
    ending in end-of-text digits (r < n_max chars left) is an n-gram of order n <= r only; above
    that it is a group alone, taken back out.
    """
    found = _position_keys(texts, plan, n_max)
    if found is None:
        return None
    keys, bits = found
    if not keys.size:
        return [(0, 0, 0)] * n_max
    keys.sort()
    full = keys >> _CODE_BITS
    code = keys & ((1 << _CODE_BITS) - 1)
    starts = np.flatnonzero(full[1:] != full[:-1])
    starts = np.concatenate(([0], starts + 1))
    # Both deltas' weights in one int64 (w1 * 2^31 + w2): one reduceat.
    packed = np.add.reduceat(_PACKED_WEIGHTS[code], starts)
    live = np.flatnonzero(packed)
    size = live.size
    if not size:
        return [(0, 0, 0)] * n_max
    full, packed = full[starts[live]], packed[live]
    w2 = ((packed + _HALF) & (2 * _HALF - 1)) - _HALF
    grouped = ((packed - w2) >> 31)[None, :] if len(plan) == 1 else np.stack(((packed - w2) >> 31, w2))
    cum = np.zeros((len(plan), size + 1), dtype=np.int64)
    np.cumsum(grouped, axis=1, out=cum[:, 1:])
    # Row n - 1 of `bound` marks where an n-gram of order n starts (key i shares fewer than n
    # leading digits with key i - 1) and, last, the end; `flat` lists them as n_row * width + i.
    width = size + 1
    bound = np.ones((n_max, width), dtype=bool)
    limits = np.array([1 << bits * (n_max - n) for n in range(1, n_max + 1)], dtype=np.int64)
    np.greater_equal(full[1:] ^ full[:-1], limits[:, None], out=bound[:, 1:size])
    flat = np.flatnonzero(bound)
    rows = np.searchsorted(flat, np.arange(n_max) * width)
    index = flat % width  # the key index of each bound
    nonzero = [np.count_nonzero(g) for g in grouped]
    if len(plan) == 1 or 4 * min(nonzero) >= size:
        # Running sums are linear: combine the deltas' running sums into the channels' first.
        sums = _abs_sums(_group_sums(_channels(plan, cum), index), rows)
    else:
        # One delta (z) touches few keys: channels are multiples of the other delta's weight (b)
        # except in the n-grams holding a key of z, which are corrected one by one.
        z = 0 if nonzero[0] <= nonzero[1] else 1
        b = 1 - z
        base = _abs_sums(_group_sums(cum[b:b + 1], index), rows)[0]
        held = (np.arange(n_max)[:, None] * width + np.flatnonzero(grouped[z])).ravel()
        k = np.searchsorted(flat, held, side="right") - 1
        k = k[np.concatenate(([True], k[1:] != k[:-1]))]
        lo, hi = index[k], index[k + 1]
        w = cum[:, hi] - cum[:, lo]
        only_b = w.copy()
        only_b[z] = 0
        row = flat[k] // width
        coef = np.abs(_channels(plan, np.eye(2, dtype=np.int64)))[:, b:b + 1]
        fix = np.abs(_channels(plan, w)) - np.abs(_channels(plan, only_b))
        sums = coef * base + np.stack([np.bincount(row, f, n_max) for f in fix]).astype(np.int64)
    digit = (1 << bits) - 1
    ends = np.flatnonzero((full & digit) == 0)  # keys with end-of-text digits
    if ends.size:
        tail = full[ends]
        # r = chars before the end-of-text digits; the key is a group alone at orders r + 1 .. n_max.
        r = n_max - sum((tail & ((1 << bits * t) - 1)) == 0 for t in range(1, n_max))
        alone = (r[None, :] <= np.arange(n_max)[:, None]).astype(np.int64)
        sums -= np.abs(_channels(plan, grouped[:, ends])) @ alone.T
    out = _expand(plan, sums).T.tolist()
    return [tuple(row) for row in out]


def _group_sums(cum: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per bound (key `index`, the bounds of all orders one after the other), the difference of
    running sums `cum` (rows) from the previous bound: the group sums of each order, and between
    orders a step of -cum[:, -1]."""
    v = cum[:, index]
    return v[:, 1:] - v[:, :-1]


def _abs_sums(per: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row of `per` (from `_group_sums`) and order, the sum of |group sum| (row steps taken out)."""
    sums = np.add.reduceat(np.abs(per), rows, axis=1)
    sums[:, :-1] -= np.abs(per[:, rows[1:] - 1])
    return sums


#: Per weight code 3 (w1 + 1) + (w2 + 1): the weights of deltas 1 and 2 of a plan, packed as
#: w1 * 2^31 + w2 (sums unpack exactly while |w2 sum| < _HALF = 2^30, i.e. any text that fits).
_HALF = 1 << 30
_PACKED_WEIGHTS = np.array([(c // 3 - 1) * (2 * _HALF) + (c % 3 - 1) for c in range(9)], dtype=np.int64)


def _channels(plan: _Plan, w: np.ndarray) -> np.ndarray:
    """Rows E, A, D = E - A (up to sign) from the rows of delta weights `w` of a two-delta plan;
    a one-delta plan keeps its one row (each channel is a fixed multiple of it: `_expand`)."""
    if len(plan) == 1:
        return w
    (_, _, e1, a1), (_, _, e2, a2) = plan
    out = np.empty((3, w.shape[1]), dtype=w.dtype)
    for row, (c1, c2) in enumerate(((e1, e2), (a1, a2), (e1 - a1, e2 - a2))):
        if not c2:
            out[row] = w[0]
        elif not c1:
            out[row] = w[1]
        elif c1 == c2:
            np.add(w[0], w[1], out=out[row])
        else:
            np.subtract(w[0], w[1], out=out[row])
    return out


def _expand(plan: _Plan, sums: np.ndarray) -> np.ndarray:
    """Sums of |E|, |A|, |D| (rows) from those of `_channels`."""
    if len(plan) > 1:
        return sums
    _, _, ce, ca = plan[0]
    return np.array([[abs(ce)], [abs(ca)], [abs(ce - ca)]], dtype=np.int64) * sums


#: Below this many changed chars (original vs expected plus original vs actual), the windows are
#: compared as strings in Python; above it the texts are normalized and counted with numpy.
_NUMPY_MIN_CHARS = 300
#: ASCII texts of up to `_WHOLE_MAX_CHARS` chars in all (the distinct ones) with at least this
#: share of them changed (the windows of both deltas) are counted whole, all three in one pass
#: (`_sums_whole`); others through their changed windows (`_sums_windows`: longer texts, where
#: windows spanning a few small edits are narrowed by a line diff, and small changes).
_WHOLE_MIN_SHARE = 0.2
_WHOLE_MAX_CHARS = 12288


def _count_whole(original: str, expected: str, actual: str, changed: int, v: ChrFVariant) -> bool:
    """Whether to count the whole texts (`_sums_whole`) rather than the changed windows."""
    distinct = {original, expected, actual}
    size = sum(map(len, distinct))
    return (_WHOLE_MIN_SHARE * size <= changed and size <= _WHOLE_MAX_CHARS and v.n * 8 + _CODE_BITS < 64
            and all(t.isascii() for t in distinct))


#: Translate table for `collapse`, byte -> digit: other blanks -> " " and "\r" -> "\n", then + 1
#: as `_PLUS1` (byte 255, no ASCII char, is the separator after each text: the end-of-text digit 0).
_COLLAPSE_TABLE = bytes(_PLUS1[b] for b in _WS_TO.tolist())
#: The ASCII whitespace bytes (`remove` deletes them), and the digits of " " and "\n".
_WS_BYTES = bytes(np.flatnonzero(_IS_WS[:128]).tolist())
_SPACE_DIGIT, _NEWLINE_DIGIT = ord(" ") + 1, ord("\n") + 1
_SEPARATOR = b"\xff" * 8
#: (E, A) weights of each text's n-grams: E = expected - original, A = actual - original.
_ROLE_WEIGHTS = ((-1, -1), (1, 0), (0, 1))
#: Two channel weights packed in one int64 as E * 2^32 + A (sums unpack exactly while |A| < 2^31).
_PACK_BITS = 32
_PACK_HALF = 1 << (_PACK_BITS - 1)


def _sums_whole(texts: tuple[str, str, str], v: ChrFVariant) -> list[tuple[int, int, int]]:
    """Per order: sum over n-grams of |E|, |A| and |E - A|, counting every n-gram of the whole
    (raw, ASCII) texts once: each distinct text with its (E, A) weights.

    The texts are whitespace-normalized together as one byte array (each followed by 8 separator
    bytes, which become the end-of-text digit 0), their positions keyed by the next n chars
    (8 bits each) and a weight code (4 bits) and sorted once. N-grams of order n are runs of keys
    sharing n leading digits; per order, the group sums are differences of running sums of the
    weights at the places where that prefix changes (all orders at once: one row per order). Keys
    at separator positions weigh 0; a key within n - 1 chars of a text's end (r chars left) is a
    group alone above order r (with the same keys of other texts' ends), taken back out.
    """
    n_max = v.n
    roles: dict[str, tuple[int, int]] = {}
    for t, (we, wa) in zip(texts, _ROLE_WEIGHTS):
        e0, a0 = roles.get(t, (0, 0))
        roles[t] = (e0 + we, a0 + wa)
    segs = [(t, w) for t, w in roles.items() if w != (0, 0)]
    weights = [w for _, w in segs]
    joined = _SEPARATOR.join([t.encode("ascii") for t, _ in segs]) + _SEPARATOR
    if v.ws == "remove":
        digits = np.frombuffer(joined.translate(_PLUS1, _WS_BYTES), np.uint8)
    else:
        d = np.frombuffer(joined.translate(_COLLAPSE_TABLE), np.uint8)
        keep = np.empty(d.size, dtype=bool)  # drop a blank or newline equal to the char before it
        keep[0] = True
        np.not_equal(d[1:], d[:-1], out=keep[1:])
        keep[1:] |= (d[1:] != _SPACE_DIGIT) & (d[1:] != _NEWLINE_DIGIT)
        digits = d[keep]
    ends = np.flatnonzero(digits == 0)[::8].tolist()  # where each normalized text ends
    starts = [0, *(e + 8 for e in ends[:-1])]
    size = digits.size - 7
    keys = (np.ndarray((size,), ">u8", digits, strides=(1,)) >> (8 * (8 - n_max))).view(np.int64)
    keys <<= _CODE_BITS
    counts = [c for s, e in zip(starts, ends) for c in (e - s, 8)]
    counts[-1] = 1
    keys |= np.repeat(np.array([c for i in range(1, len(segs) + 1) for c in (i, 0)], dtype=np.int64), counts)
    # Keys within n_max - 1 chars of a text's end, with the text's weights and the chars left.
    near = [(key, w, e - pos) for s, e, w in zip(starts, ends, weights)
            for pos, key in enumerate(keys[max(s, e - n_max + 1):e].tolist(), max(s, e - n_max + 1))]
    keys.sort()
    # One weight per code (0: separator positions): E and A packed, or one channel r when E, A and
    # E - A are fixed multiples of it.
    if all(we == wa for we, wa in weights):
        table, mult = [we for we, _ in weights], (1, 1, 0)
    elif all(wa == 0 for _, wa in weights):
        table, mult = [we for we, _ in weights], (1, 0, 1)
    elif all(we == 0 for we, _ in weights):
        table, mult = [wa for _, wa in weights], (0, 1, 1)
    else:
        table, mult = [(we << _PACK_BITS) + wa for we, wa in weights], None
    width = size + 1
    cum = np.zeros(width, dtype=np.int64)
    np.cumsum(np.array([0, *table], dtype=np.int64).take(keys & ((1 << _CODE_BITS) - 1)), out=cum[1:])
    # Row n - 1 of `bound` marks where an n-gram of order n starts (key i shares fewer than n
    # leading digits with key i - 1) and, first and last, the ends; `flat` lists them as
    # n_row * width + i.
    bound = np.ones((n_max, width), dtype=bool)
    np.greater_equal(keys[1:] ^ keys[:-1], _limits(n_max)[:, None], out=bound[:, 1:size])
    flat = np.flatnonzero(bound)
    rows = np.searchsorted(flat, np.arange(n_max) * width)
    at = cum.take(flat, mode="wrap")  # the running sum at each bound (index flat % width)
    group = at[1:] - at[:-1]  # group sums, and between rows a step of -cum[-1]
    if mult is None:
        per = np.empty((3, group.size), dtype=np.int64)
        e_row, a_row, d_row = per
        np.add(group, _PACK_HALF, out=a_row)
        np.bitwise_and(a_row, (1 << _PACK_BITS) - 1, out=a_row)
        np.subtract(a_row, _PACK_HALF, out=a_row)
        np.subtract(group, a_row, out=e_row)
        np.right_shift(e_row, _PACK_BITS, out=e_row)
        np.subtract(e_row, a_row, out=d_row)
    else:
        per = group[None, :]
    np.abs(per, out=per)
    sums = np.add.reduceat(per, rows, axis=1)
    sums[:, :-1] -= per[:, rows[1:] - 1]  # the steps between rows
    if mult is None:
        s_e, s_a, s_d = sums.tolist()
    else:
        s1 = sums[0].tolist()
        s_e, s_a, s_d = ([c * x for x in s1] for c in mult)
    # A key with r < n_max chars left is an n-gram of order <= r only: above, its group is the
    # keys equal to it (at the ends of texts), taken back out.
    merged: dict[int, list[int]] = {}
    for key, (we, wa), r in near:
        m = merged.setdefault(key >> _CODE_BITS, [r, 0, 0])
        m[1] += we
        m[2] += wa
    for r, e, a in merged.values():
        if e or a:
            for n in range(r, n_max):
                s_e[n] -= abs(e)
                s_a[n] -= abs(a)
                s_d[n] -= abs(e - a)
    return list(zip(s_e, s_a, s_d))


@functools.lru_cache(maxsize=8)
def _limits(n_max: int) -> np.ndarray:
    """Per order n: keys (digits of 8 bits, then the weight code) differ in their first n digits
    iff their xor is at least this."""
    return np.array([1 << (_CODE_BITS + 8 * (n_max - n)) for n in range(1, n_max + 1)], dtype=np.int64)


def _counts(original: str, expected: str, actual: str, v: ChrFVariant) -> list[tuple[int, int, int]]:
    """Per order TP/FP/FN of the deltas original -> expected and original -> actual."""
    pe, se = _trim(original, expected)
    pa, sa = _trim(original, actual)
    changed = 2 * len(original) + len(expected) + len(actual) - 2 * (pe + se + pa + sa)
    if changed < _NUMPY_MIN_CHARS:
        oe, ee = _normalized_windows(original, expected, pe, se, v.ws, v.n - 1)
        if expected == actual:
            de = _trimmed_delta(oe, ee, v.n)
            return [(sum(map(abs, d.values())), 0, 0) for d in de]
        oa, aa = _normalized_windows(original, actual, pa, sa, v.ws, v.n - 1)
        return list(map(_compare, _trimmed_delta(oe, ee, v.n), _trimmed_delta(oa, aa, v.n)))
    if _count_whole(original, expected, actual, changed, v):
        sums = _sums_whole((original, expected, actual), v)
    else:
        sums = _sums_windows(original, expected, actual, v)
    out = []
    for s_e, s_a, s_d in sums:  # per n-gram: TP = min(|E|, |A|) if E, A share a sign = (|E| + |A| - |E - A|) / 2
        tp = (s_e + s_a - s_d) // 2
        out.append((tp, s_a - tp, s_e - tp))
    return out


def _sums_windows(original: str, expected: str, actual: str, v: ChrFVariant) -> list[tuple[int, int, int]]:
    """Per order: sum over n-grams of |E|, |A| and |E - A|, counting the changed windows of the
    normalized texts (numpy; Python where the texts have too many distinct chars)."""
    texts = (normalize_whitespace(original, v.ws), normalize_whitespace(expected, v.ws),
             normalize_whitespace(actual, v.ws))
    plan = _plan(texts)
    sums = _sums_numpy(texts, plan, v.n)
    if sums is None:
        sums = _sums_python(texts, plan, v.n)
    return sums


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
        counts = _counts(original, expected, actual, v)
    else:
        o, e, a = (normalize_whitespace(t, v.ws) for t in (original, expected, actual))
        counts = list(map(_compare, _delta(o, e, v.n), _delta(o, a, v.n)))
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
