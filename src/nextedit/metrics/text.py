"""Small text helpers shared by the metrics and mining: fast common prefix/suffix lengths (of strings or line
lists), line-safe trims."""

from __future__ import annotations

from rapidfuzz.distance import Postfix, Prefix

__all__ = ["common_prefix", "common_suffix", "line_safe_trim"]


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix (strings: rapidfuzz; lists: binary search over C-level
    slice compares)."""
    if isinstance(a, str) and isinstance(b, str):
        return int(Prefix.similarity(a, b))
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # invariant: a[:lo] == b[:lo] and the answer is <= hi
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def common_suffix(a: str, b: str, limit: int | None = None) -> int:
    """Length of the longest common suffix, at most `limit` (default: the shorter length)."""
    la, lb = len(a), len(b)
    hi = min(la, lb) if limit is None else min(limit, la, lb)
    if isinstance(a, str) and isinstance(b, str):
        return min(int(Postfix.similarity(a, b)), max(hi, 0))
    lo = 0
    if hi == 0 or a[la - hi:] == b[lb - hi:]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid:la - lo] == b[lb - mid:lb - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def line_safe_trim(*texts: str) -> tuple[int, int]:
    """Prefix and suffix lengths shared by all `texts`, cut where a tokenizer must break.

    The prefix ends just after a `\\n` followed by a non-newline char, the suffix starts at such a
    place, and one shared char is kept on each side, so tokenizing the trimmed middles gives the
    same tokens as tokenizing the full texts (newline runs are never split).
    """
    first = texts[0]
    p = min(common_prefix(first, t) for t in texts[1:])
    s = min(common_suffix(first, t) for t in texts[1:])
    s = min(s, min(len(t) for t in texts) - p)
    # Prefix: largest cut <= p - 1 with first[cut - 1] == "\n" and first[cut] not a newline.
    cut = first.rfind("\n", 0, max(p - 1, 0))
    while cut != -1 and first[cut + 1] in "\r\n":
        cut = first.rfind("\n", 0, cut)
    prefix = cut + 1
    # Suffix: starts at e >= len - s + 1 with first[e - 1] == "\n" and first[e] not a newline.
    n = len(first)
    e = first.find("\n", n - s)
    while e != -1 and e + 1 < n and first[e + 1] in "\r\n":
        e = first.find("\n", e + 1)
    suffix = 0 if e == -1 or e + 1 >= n else n - (e + 1)
    return prefix, suffix
