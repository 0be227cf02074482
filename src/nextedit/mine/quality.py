"""Data-quality filters of mined examples: whitespace-only files and edits, rewrites, giant and trivially
implied edits, near-duplicates across commits (MinHash)."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from nextedit.metrics.text import common_prefix, common_suffix
from nextedit.mine.config import FilterConfig
from nextedit.patch import changed_lines
from nextedit.record import Example

if TYPE_CHECKING:
    import numpy as np
    from datasketch import MinHash

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
    # Every character diff inserts or deletes at least the length difference, and at least the characters
    # whose counts differ: past `trivial_chars` the edit cannot be trivial, whatever the diff.
    if cfg.trivial_chars and abs(len(old) - len(new)) <= cfg.trivial_chars \
            and (Counter(old) - Counter(new)).total() + (Counter(new) - Counter(old)).total() <= cfg.trivial_chars:
        diff = _changed_chars(old, new)
        if len(diff) <= cfg.trivial_chars and not _WORDISH.search(diff):
            return "trivial", f"the expected edit only adds or removes {diff!r}"
    return None


class NearDuplicates:
    """Streaming near-duplicate test across commits: MinHash (token 5-gram shingles) of the text around the
    cursor plus the expected edit's changed lines, against the examples of the commits seen before."""

    def __init__(self, cfg: FilterConfig, num_perm: int = 64, shingle: int = 5, seed: int = 1):
        # Imported here: datasketch loads scipy (~0.3 s), which only the process running this pass needs.
        from datasketch import MinHash, MinHashLSH

        self.threshold = cfg.near_duplicate
        self.window_lines = cfg.window_lines
        self.num_perm, self.shingle, self.seed = num_perm, shingle, seed
        self.enabled = self.threshold > 0
        self._lsh = MinHashLSH(threshold=self.threshold, num_perm=num_perm) if self.enabled else None
        template = MinHash(num_perm=num_perm, seed=seed)
        self._perms, self._scheme = template.permutations, template.scheme
        self._sigs: list[np.ndarray] = []
        self._ids: list[str] = []
        self._tokens: dict[str, int] = {}

    def signature(self, example: Example) -> MinHash:
        """The MinHash of an example's cursor window and expected changed lines."""
        from datasketch import MinHash

        from nextedit.dataset.dedup import cursor_window, shingle_hashes, tokenize

        text = cursor_window(example.snapshot, self.window_lines)
        if example.expected:
            text += "\n" + "\n".join(changed_lines(example.expected[0]))
        m = MinHash(num_perm=self.num_perm, seed=self.seed, hashfunc=int, permutations=self._perms,
                    scheme=self._scheme)
        if len(self._tokens) > 500_000:
            self._tokens.clear()
        m.update_batch(shingle_hashes(tokenize(text), self.shingle, self._tokens).tolist())
        return m

    def match(self, m: MinHash) -> tuple[str, float] | None:
        """(id, similarity) of an earlier commit's example at least `threshold` similar, or None."""
        import numpy as np

        if self._lsh is None:
            return None
        sig = m.hashvalues.astype(np.uint32)
        best: tuple[str, float] | None = None
        for key in self._lsh.query(m):
            sim = float(np.count_nonzero(sig == self._sigs[key])) / len(sig)
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (self._ids[key], sim)
        return best

    def add(self, example_id: str, m: MinHash) -> None:
        """Remember a kept example (call once its whole commit has been tested)."""
        if self._lsh is None:
            return
        import numpy as np

        self._lsh.insert(len(self._sigs), m, check_duplication=False)
        self._sigs.append(m.hashvalues.astype(np.uint32))
        self._ids.append(example_id)
