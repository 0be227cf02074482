"""Data-quality filters of mined examples: whitespace-only files and edits, rewrites, giant and trivially
implied edits, near-duplicates across commits (MinHash)."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from rapidfuzz.distance import Indel

from nextedit.metrics.text import common_prefix, common_suffix
from nextedit.mine.config import FilterConfig
from nextedit.patch import changed_lines
from nextedit.record import Example

if TYPE_CHECKING:
    import numpy as np

_WORDISH = re.compile(r"\w")


def _squeeze(lines: list[str]) -> str:
    """The lines joined without any whitespace (`str.split` drops the same characters as the regex `\\s`)."""
    return "".join("".join(lines).split())


def whitespace_only(old_lines: list[str], new_lines: list[str]) -> bool:
    """True when two versions of a file differ, but only in whitespace (indentation, blank lines, line breaks).

    Removing whitespace commutes with concatenation, so only the lines between the common leading and
    trailing lines are compared."""
    if old_lines == new_lines:
        return False
    p = common_prefix(old_lines, new_lines)
    s = common_suffix(old_lines, new_lines, min(len(old_lines), len(new_lines)) - p)
    return _squeeze(old_lines[p:len(old_lines) - s]) == _squeeze(new_lines[p:len(new_lines) - s])


def file_filter_reason(old_lines: list[str], new_lines: list[str], removed: int, cfg: FilterConfig) -> str | None:
    """Why one changed file is not mined ("whitespace-only", "rewrite": most of an existing file's lines
    replaced), or None to mine it. `removed`: the lines the change removes. New files are never rewrites."""
    if cfg.whitespace_only and whitespace_only(old_lines, new_lines):
        return "whitespace-only"
    if (0 < cfg.rewrite_fraction and removed >= cfg.rewrite_min_lines
            and removed >= cfg.rewrite_fraction * len(old_lines)):
        return "rewrite"
    return None


def _sides(patch: str) -> tuple[list[str], list[str]]:
    lines = changed_lines(patch)
    return [line[1:] for line in lines if line[0] == "-"], [line[1:] for line in lines if line[0] == "+"]


def _changed_chars(old: str, new: str) -> str:
    """The characters inserted or deleted between two strings (character diff)."""
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    return "".join(old[i1:i2] + new[j1:j2] for tag, i1, i2, j1, j2 in ops if tag != "equal")


def example_filter_reason(example: Example | dict[str, Any], cfg: FilterConfig) -> tuple[str, str] | None:
    """(filter, detail) when an example's expected edit is whitespace-only, giant or trivially implied."""
    expected = example.expected if isinstance(example, Example) else example["expected"]
    if not expected:
        return None
    removed, added = _sides(expected[0])
    if cfg.max_expected_lines and len(removed) + len(added) > cfg.max_expected_lines:
        return "giant", f"{len(removed) + len(added)} changed lines > {cfg.max_expected_lines}"
    old, new = _squeeze(removed), _squeeze(added)
    if old == new:
        if cfg.whitespace_only:
            return "whitespace-only", "the expected edit only changes whitespace"
        return None
    # difflib's matching blocks are a common subsequence, so its diff inserts or deletes at least the Indel
    # distance (rapidfuzz, native): past `trivial_chars` the edit cannot be trivial, whatever the diff.
    if cfg.trivial_chars and abs(len(old) - len(new)) <= cfg.trivial_chars \
            and Indel.distance(old, new, score_cutoff=cfg.trivial_chars) <= cfg.trivial_chars:
        diff = _changed_chars(old, new)
        if len(diff) <= cfg.trivial_chars and not _WORDISH.search(diff):
            return "trivial", f"the expected edit only adds or removes {diff!r}"
    return None


_MAX32 = (1 << 32) - 1


def _fmix32(hv: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (datasketch's pre-mix of the "affine32" scheme), element-wise, wrapping."""
    import numpy as np

    hv = hv ^ (hv >> np.uint32(16))
    hv = hv * np.uint32(0x85EBCA6B)
    hv = hv ^ (hv >> np.uint32(13))
    hv = hv * np.uint32(0xC2B2AE35)
    return hv ^ (hv >> np.uint32(16))


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimizing the false positive plus false negative probability mass (weights 0.5 / 0.5), as
    datasketch's `MinHashLSH` chooses them. The integrands are polynomials of degree bands * rows <= num_perm,
    which Gauss-Legendre quadrature of num_perm // 2 + 1 nodes integrates exactly; when the best two choices
    are too close for that to be sure, datasketch (scipy) decides."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 2)

    def integral(f: Any, lo: float, hi: float) -> float:
        half = (hi - lo) / 2
        return float(half * np.dot(weights, f(half * nodes + (hi + lo) / 2)))

    scored = []
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = integral(lambda s, b=b, r=r: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)
            fn = integral(lambda s, b=b, r=r: (1 - s ** float(r)) ** float(b), threshold, 1.0)
            scored.append((fp * 0.5 + fn * 0.5, b, r))
    ranked = sorted(scored)
    if len(ranked) > 1 and ranked[1][0] - ranked[0][0] <= 1e-9:
        from datasketch.lsh import _optimal_param

        return _optimal_param(threshold, num_perm, 0.5, 0.5)
    return ranked[0][1], ranked[0][2]


class NearDuplicates:
    """Streaming near-duplicate test across commits: MinHash (token 5-gram shingles) of the text around the
    cursor plus the expected edit's changed lines, against the examples of the commits seen before.

    The signatures and the LSH index are datasketch's (`MinHash` of the "affine32" scheme with `hashfunc=int`,
    `MinHashLSH` with its optimal bands), computed here with numpy: importing datasketch loads scipy, which
    costs more CPU than the whole pass (tests/test_mine_quality.py checks both give the same answers)."""

    def __init__(self, cfg: FilterConfig, num_perm: int = 64, shingle: int = 5, seed: int = 1):
        import numpy as np

        self.threshold = cfg.near_duplicate
        self.window_lines = cfg.window_lines
        self.num_perm, self.shingle, self.seed = num_perm, shingle, seed
        self.enabled = self.threshold > 0
        gen = np.random.RandomState(seed)  # datasketch's permutations of the "affine32" scheme
        a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        self._a, self._b = a, b
        if self.enabled:
            self.bands, self.rows = _lsh_params(self.threshold, num_perm)
            if self.bands < 2:
                raise ValueError("The number of bands are too small (b < 2)")
            self._tables: list[dict[bytes, set[int]]] = [{} for _ in range(self.bands)]
        self._sigs: list[np.ndarray] = []
        self._ids: list[str] = []
        self._tokens: dict[str, int] = {}

    def signature(self, example: Example) -> np.ndarray:
        """The MinHash values (uint32) of an example's cursor window and expected changed lines."""
        import numpy as np

        from nextedit.dataset.dedup import cursor_window, shingle_hashes, tokenize

        text = cursor_window(example.snapshot, self.window_lines)
        if example.expected:
            text += "\n" + "\n".join(changed_lines(example.expected[0]))
        if len(self._tokens) > 500_000:
            self._tokens.clear()
        hashes = shingle_hashes(tokenize(text), self.shingle, self._tokens)
        hv = _fmix32(np.array(hashes.tolist(), dtype=np.uint32).reshape(-1, 1))
        with np.errstate(over="ignore"):
            phv = hv * self._a + self._b
        return np.minimum(np.full(self.num_perm, _MAX32, dtype=np.uint32), phv.min(axis=0))

    def _keys(self, sig: np.ndarray) -> list[bytes]:
        return [sig[i * self.rows:(i + 1) * self.rows].tobytes() for i in range(self.bands)]

    def match(self, sig: np.ndarray) -> tuple[str, float] | None:
        """(id, similarity) of an earlier commit's example at least `threshold` similar, or None."""
        import numpy as np

        if not self.enabled:
            return None
        candidates: set[int] = set()  # filled in datasketch's order: ties go to the same example
        for key, table in zip(self._keys(sig), self._tables, strict=True):
            for k in table.get(key, ()):
                candidates.add(k)
        best: tuple[str, float] | None = None
        for k in candidates:
            sim = float(np.count_nonzero(sig == self._sigs[k])) / len(sig)
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (self._ids[k], sim)
        return best

    def add(self, example_id: str, sig: np.ndarray) -> None:
        """Remember a kept example (call once its whole commit has been tested)."""
        if not self.enabled:
            return
        k = len(self._sigs)
        for key, table in zip(self._keys(sig), self._tables, strict=True):
            table.setdefault(key, set()).add(k)
        self._sigs.append(sig)
        self._ids.append(example_id)
