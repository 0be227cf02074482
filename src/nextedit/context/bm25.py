"""BM25 over line chunks of files: tokenizing, chunking (Zed's 40/10 lines) and weighted-term scoring (numpy)."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


@functools.lru_cache(maxsize=1 << 16)
def _word_tokens(word: str) -> tuple[str, ...]:
    if len(word) < 2:
        return ()
    low = word.lower()
    parts = [p.lower() for piece in word.split("_") for p in _CAMEL.findall(piece)]
    if len(parts) > 1:
        return (low, *(p for p in parts if len(p) > 1))
    return (low,)


def tokenize(text: str) -> list[str]:
    """Lower-case identifier tokens (2+ chars, no bare numbers); compounds also yield their snake/camel parts."""
    out: list[str] = []
    for word in _WORD.findall(text):
        out.extend(_word_tokens(word))
    return out


def chunk_ranges(lines: list[str], *, size: int = 40, overlap: int = 10,
                 snap: int = 5) -> list[tuple[int, int]]:
    """Half-open line ranges [start, end) of `size`-line chunks overlapping by `overlap` lines.

    A chunk end is moved to the nearest blank line within `snap` lines, as Zed does, so chunks
    tend to end between blocks rather than inside them.
    """
    n = len(lines)
    if n == 0:
        return []
    if size <= overlap:
        raise ValueError(f"chunk size {size} must be larger than overlap {overlap}")
    out: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = min(start + size, n)
        if end < n:
            best = None
            for delta in sorted(range(-snap, snap + 1), key=abs):
                cand = end + delta
                if start + overlap < cand < n and not lines[cand - 1].strip():
                    best = cand
                    break
            end = best if best is not None else end
        out.append((start, end))
        if end >= n:
            break
        start = max(end - overlap, start + 1)
    return out


class BM25Index:
    """An append-only inverted index of weighted term counts per document, scored with Okapi BM25.

    Documents are only ever added; `scores(query, active=mask)` scores a subset (say, the chunks
    of one revision's files), with N, document frequencies and the average length taken over
    that subset only, so one index can serve many revisions of a repository.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self._ids: dict[str, list[int]] = {}
        self._tfs: dict[str, list[float]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lengths: list[float] = []
        self._lengths_np = np.zeros(0)

    @classmethod
    def build(cls, documents: Iterable[Mapping[str, float]], *, k1: float = 1.2,
              b: float = 0.75) -> BM25Index:
        """Index documents given as {term: weighted count}."""
        index = cls(k1=k1, b=b)
        for terms in documents:
            index.add(terms)
        return index

    def add(self, terms: Mapping[str, float]) -> int:
        """Add one document ({term: weighted count}); returns its id."""
        doc_id = len(self._lengths)
        self._lengths.append(float(sum(terms.values())))
        for term, count in terms.items():
            ids = self._ids.get(term)
            if ids is None:
                self._ids[term], self._tfs[term] = [doc_id], [float(count)]
            else:
                ids.append(doc_id)
                self._tfs[term].append(float(count))
        return doc_id

    def __len__(self) -> int:
        return len(self._lengths)

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        ids = self._ids.get(term)
        if ids is None:
            return None
        cached = self._arrays.get(term)
        if cached is None:
            cached = (np.asarray(ids, dtype=np.int64), np.asarray(self._tfs[term], dtype=np.float64))
            self._arrays[term] = cached
        elif len(cached[0]) != len(ids):  # documents were added since: convert only the new tail
            n = len(cached[0])
            cached = (np.concatenate([cached[0], np.asarray(ids[n:], dtype=np.int64)]),
                      np.concatenate([cached[1], np.asarray(self._tfs[term][n:], dtype=np.float64)]))
            self._arrays[term] = cached
        return cached

    def _lengths_array(self) -> np.ndarray:
        if len(self._lengths_np) != len(self._lengths):
            self._lengths_np = np.asarray(self._lengths, dtype=np.float64)
        return self._lengths_np

    @staticmethod
    def _idf(n_docs: int, df: int) -> float:
        return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))

    def idf(self, term: str, active: np.ndarray | None = None) -> float:
        """Lucene's always-positive idf ln(1 + (N - n + 0.5) / (n + 0.5)), over `active` documents."""
        posting = self._posting(term)
        if active is None:
            return self._idf(len(self._lengths), 0 if posting is None else len(posting[0]))
        df = 0 if posting is None else int(np.count_nonzero(_mask(active, posting[0])))
        return self._idf(int(np.count_nonzero(active)), df)

    def scores(self, query: Mapping[str, float], active: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every document for a query {term: weight}; 0 for documents not `active`.

        `active` is a boolean mask over document ids; ids past its end count as inactive.
        """
        lengths = self._lengths_array()
        out = np.zeros(len(lengths), dtype=np.float64)
        n_docs = len(lengths) if active is None else int(np.count_nonzero(active))
        if not n_docs:
            return out
        if active is None:
            avgdl = float(lengths.mean()) or 1.0
        else:
            avgdl = float(lengths[: len(active)][active].mean()) or 1.0
        for term, weight in query.items():
            posting = self._posting(term)
            if posting is None or weight <= 0:
                continue
            ids, tf = posting
            if active is not None:
                keep = _mask(active, ids)
                ids, tf = ids[keep], tf[keep]
                if not len(ids):
                    continue
            norm = self.k1 * (1.0 - self.b + self.b * lengths[ids] / avgdl)
            out[ids] += weight * self._idf(n_docs, len(ids)) * tf * (self.k1 + 1.0) / (tf + norm)
        return out


def _mask(active: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """active[ids], with ids past the end of the mask counted as inactive."""
    inside = ids < len(active)
    if inside.all():
        return active[ids]
    out = np.zeros(len(ids), dtype=bool)
    out[inside] = active[ids[inside]]
    return out


def weighted_terms(parts: Iterable[tuple[str, float]]) -> Counter[str]:
    """Sum token counts over (text, weight) pairs into {term: weighted count}."""
    total: Counter[str] = Counter()
    for text, weight in parts:
        for token in tokenize(text):
            total[token] += weight
    return total
