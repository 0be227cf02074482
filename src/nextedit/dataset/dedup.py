"""Remove exact and near-duplicate examples (MinHash + LSH over token shingles around the cursor)."""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nextedit.record import Example, Snapshot

if TYPE_CHECKING:
    from datasketch import MinHash, MinHashLSH

CURSOR_TOKEN = "<|user_cursor|>"
_TOKEN = re.compile(r"<\|user_cursor\|>|\w+|[^\w\s]")


@dataclass(frozen=True)
class DedupConfig:
    """How duplicates are found and how many near-duplicates are kept per cluster."""

    threshold: float = 0.5
    num_perm: int = 128
    shingle: int = 5
    max_duplicates: int = 1
    window_lines: int = 20
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.max_duplicates < 1:
            raise ValueError(f"max_duplicates must be at least 1, got {self.max_duplicates}")
        if self.shingle < 1 or self.num_perm < 2 or self.window_lines < 0:
            raise ValueError("shingle >= 1, num_perm >= 2 and window_lines >= 0 are required")


@dataclass
class Dropped:
    """Why one example was removed: `exact` or `near` duplicate of the kept example `duplicate_of`
    (an index into the input), or `reference` when it duplicates an example of the reference file."""

    index: int
    reason: str
    duplicate_of: int | None = None
    similarity: float = 1.0


@dataclass
class DedupSummary:
    """Counts of a dedup run."""

    total: int = 0
    exact_removed: int = 0
    near_clusters: int = 0
    near_removed: int = 0
    reference_removed: int = 0
    kept: int = 0
    dropped: list[Dropped] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """Counts only, for printing or JSON."""
        return {"total": self.total, "kept": self.kept, "exact_removed": self.exact_removed,
                "near_clusters": self.near_clusters, "near_removed": self.near_removed,
                "reference_removed": self.reference_removed}


def tokenize(text: str) -> list[str]:
    """Word-ish tokens: runs of word characters, single punctuation characters, the cursor marker;
    whitespace is dropped."""
    return _TOKEN.findall(text)


def cursor_window(snapshot: Snapshot, window_lines: int) -> str:
    """The snapshot text within `window_lines` lines of the cursor (0: all), cursor marker inserted."""
    text, cursor = snapshot.text, snapshot.cursor
    marked = text[:cursor] + CURSOR_TOKEN + text[cursor:]
    if window_lines == 0:
        return marked
    lines = marked.split("\n")
    row = text.count("\n", 0, cursor)
    return "\n".join(lines[max(0, row - window_lines): row + window_lines + 1])


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def shingle_hashes(tokens: list[str], n: int, cache: dict[str, int] | None = None) -> np.ndarray:
    """32-bit hashes of the token n-grams (hashed without building
    shingle strings): CRC-32 per token, combined polynomially over each window, folded to 32 bits.
    `cache` (token -> CRC) saves rehashing tokens seen before."""
    if not tokens:
        return np.zeros(1, dtype=np.uint64)
    cache = {} if cache is None else cache
    for tok in set(tokens).difference(cache):
        cache[tok] = zlib.crc32(tok.encode())
    t = np.fromiter(map(cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
    width = min(n, len(t))
    h = t[: len(t) - width + 1].copy()
    with np.errstate(over="ignore"):
        for k in range(1, width):
            h = h * _MULTIPLIER + t[k: len(t) - width + 1 + k]
    return (h >> np.uint64(32)) ^ (h & np.uint64(0xFFFFFFFF))


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()


def _hunks_only(patch: str) -> str:
    """A patch without its file headers (the path is not part of an example's identity)."""
    at = patch.find("@@")
    while at > 0 and patch[at - 1] != "\n":
        at = patch.find("@@", at + 2)
    return patch[at:] if at >= 0 else patch


def exact_key(ex: Example) -> bytes:
    """Digest of the normalised snapshot text with the cursor marked, plus the expected patches
    (hunks only, as a set): equal keys are exact duplicates. The file path is not part of it."""
    snap = ex.snapshot
    marked = snap.text[:snap.cursor] + CURSOR_TOKEN + snap.text[snap.cursor:]
    parts = [_normalise(marked), *sorted(_normalise(_hunks_only(p)) for p in ex.expected)]
    return hashlib.blake2b("\0\0".join(parts).encode(), digest_size=16).digest()


class Deduplicator:
    """Streaming first pass: feed examples in order with `add`, then `finish` decides what to keep.

    Memory per example: a 16-byte exact key and, for examples that are not exact duplicates,
    the MinHash signature (num_perm 32-bit values) plus the LSH band keys.
    """

    def __init__(self, config: DedupConfig | None = None):
        # Imported when used: datasketch loads scipy (~0.3 s).
        from datasketch import MinHash, MinHashLSH

        self.config = config or DedupConfig()
        self._lsh = MinHashLSH(threshold=self.config.threshold, num_perm=self.config.num_perm)
        template = MinHash(num_perm=self.config.num_perm, seed=self.config.seed)
        self._perms, self._scheme = template.permutations, template.scheme  # built once, not per example
        self._token_hashes: dict[str, int] = {}
        self._ref_lsh: MinHashLSH | None = None
        self._ref_keys: set[bytes] = set()
        self._ref_sigs: list[np.ndarray] = []
        self._seen: dict[bytes, int] = {}
        self._sigs: dict[int, np.ndarray] = {}
        self._parent: dict[int, int] = {}
        self._summary = DedupSummary()
        self._removed = array("b")

    def _minhash(self, ex: Example) -> MinHash:
        from datasketch import MinHash

        cfg = self.config
        if len(self._token_hashes) > 500_000:  # bound memory on huge vocabularies
            self._token_hashes.clear()
        hashes = shingle_hashes(tokenize(cursor_window(ex.snapshot, cfg.window_lines)), cfg.shingle,
                                self._token_hashes)
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=int, permutations=self._perms,
                    scheme=self._scheme)
        m.update_batch(hashes.tolist())
        return m

    @staticmethod
    def _similarity(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.count_nonzero(a == b)) / len(a)

    def add_reference(self, ex: Example) -> None:
        """Register an example of a reference set (e.g. the test split): input examples that
        duplicate it, exactly or nearly, are all removed."""
        if self._ref_lsh is None:
            from datasketch import MinHashLSH

            self._ref_lsh = MinHashLSH(threshold=self.config.threshold, num_perm=self.config.num_perm)
        self._ref_keys.add(exact_key(ex))
        m = self._minhash(ex)
        self._ref_lsh.insert(len(self._ref_sigs), m, check_duplication=False)
        self._ref_sigs.append(m.hashvalues.astype(np.uint32))

    def _find(self, i: int) -> int:
        root = i
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[i] != root:
            self._parent[i], i = root, self._parent[i]
        return root

    def add(self, ex: Example) -> None:
        """Feed the next input example."""
        index = self._summary.total
        self._summary.total += 1
        self._removed.append(0)
        key = exact_key(ex)
        if key in self._ref_keys:
            self._drop(Dropped(index, "reference"))
            return
        first = self._seen.get(key)
        if first is not None:
            self._drop(Dropped(index, "exact", first))
            return
        self._seen[key] = index
        m = self._minhash(ex)
        sig = m.hashvalues.astype(np.uint32)
        if self._ref_lsh is not None:
            for ref in self._ref_lsh.query(m):
                sim = self._similarity(sig, self._ref_sigs[ref])
                if sim >= self.config.threshold:
                    self._drop(Dropped(index, "reference", None, sim))
                    return
        self._sigs[index] = sig
        self._parent[index] = index
        for other in self._lsh.query(m):
            if self._similarity(sig, self._sigs[other]) >= self.config.threshold:
                a, b = self._find(index), self._find(other)
                if a != b:
                    self._parent[max(a, b)] = min(a, b)
        self._lsh.insert(index, m, check_duplication=False)

    def _drop(self, dropped: Dropped) -> None:
        self._removed[dropped.index] = 1
        self._summary.dropped.append(dropped)
        if dropped.reason == "exact":
            self._summary.exact_removed += 1
        elif dropped.reason == "near":
            self._summary.near_removed += 1
        else:
            self._summary.reference_removed += 1

    def finish(self) -> tuple[array, DedupSummary]:
        """Cluster near-duplicates, keep up to max_duplicates per cluster by greedy max-min
        diversity; return a keep flag per input example (input order) and the summary."""
        clusters: dict[int, list[int]] = defaultdict(list)
        for index in self._sigs:  # insertion order = input order
            clusters[self._find(index)].append(index)
        k = self.config.max_duplicates
        for members in clusters.values():
            if len(members) < 2:
                continue
            self._summary.near_clusters += 1
            if len(members) <= k:
                continue
            sigs = np.stack([self._sigs[i] for i in members])
            chosen = diverse_subset(sigs, k)
            chosen_set = set(chosen)
            for pos, index in enumerate(members):
                if pos in chosen_set:
                    continue
                sims = (sigs[chosen] == sigs[pos]).mean(axis=1)
                best = int(np.argmax(sims))
                self._drop(Dropped(index, "near", members[chosen[best]], float(sims[best])))
        self._summary.dropped.sort(key=lambda d: d.index)
        self._summary.kept = self._summary.total - len(self._summary.dropped)
        keep = array("b", (1 - r for r in self._removed))
        return keep, self._summary


def diverse_subset(signatures: np.ndarray, k: int) -> list[int]:
    """Greedy max-min diversity: start with row 0, then repeatedly add the row whose smallest
    MinHash distance (1 - estimated Jaccard) to the rows chosen so far is largest."""
    n = len(signatures)
    chosen = [0]
    min_dist = 1.0 - (signatures == signatures[0]).mean(axis=1)
    min_dist[0] = -1.0
    while len(chosen) < min(k, n):
        nxt = int(np.argmax(min_dist))
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, 1.0 - (signatures == signatures[nxt]).mean(axis=1))
        min_dist[chosen] = -1.0
    return chosen


def plan_dedup(examples: Iterable[Example], config: DedupConfig | None = None,
               reference: Iterable[Example] = ()) -> tuple[array, DedupSummary]:
    """Keep flags (input order) and summary for a stream of examples."""
    dedup = Deduplicator(config)
    for ex in reference:
        dedup.add_reference(ex)
    for ex in examples:
        dedup.add(ex)
    return dedup.finish()


def dedup_file(input_path: Path, output_path: Path, config: DedupConfig | None = None, *,
               reference: Path | None = None, dropped_path: Path | None = None) -> DedupSummary:
    """Deduplicate a JSONL file in two streaming passes; kept lines are copied unchanged, in order.

    With `dropped_path`, one row per removed example is written there:
    {"id", "line", "reason", "duplicate_of", "similarity"}.
    """
    from nextedit.jsonl import JsonlWriter, iter_lines, read_examples

    if Path(output_path).resolve() == Path(input_path).resolve():
        raise ValueError(f"output {output_path} would overwrite the input")
    refs = read_examples(reference) if reference is not None else ()
    ids: list[str] = []
    lines = array("q")

    def examples() -> Iterable[Example]:
        for ex in read_examples(input_path):
            ids.append(ex.id)
            yield ex

    keep, summary = plan_dedup(examples(), config, refs)
    with JsonlWriter(output_path) as out:
        for i, (line, raw) in enumerate(iter_lines(input_path)):
            lines.append(line)
            if keep[i]:
                out.write(raw)
    if dropped_path is not None:
        with JsonlWriter(dropped_path) as dropped:
            for d in summary.dropped:
                row: dict[str, Any] = {"id": ids[d.index], "line": lines[d.index], "reason": d.reason,
                                       "duplicate_of": ids[d.duplicate_of] if d.duplicate_of is not None else None,
                                       "similarity": round(d.similarity, 4)}
                dropped.write(row)
    return summary
