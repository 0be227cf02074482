"""BM25 over line chunks of files: tokenizing, chunking (Zed's 40/10 lines) and weighted-term scoring (numpy)."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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


@dataclass
class BM25Index:
    """An inverted index of weighted term counts per document, scored with Okapi BM25."""

    k1: float = 1.2
    b: float = 0.75
    _postings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _lengths: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @classmethod
    def build(cls, documents: Iterable[Mapping[str, float]], *, k1: float = 1.2,
              b: float = 0.75) -> BM25Index:
        """Index documents given as {term: weighted count}."""
        docs_by_term: dict[str, list[int]] = {}
        tf_by_term: dict[str, list[float]] = {}
        lengths: list[float] = []
        for doc_id, terms in enumerate(documents):
            lengths.append(float(sum(terms.values())))
            for term, count in terms.items():
                docs_by_term.setdefault(term, []).append(doc_id)
                tf_by_term.setdefault(term, []).append(float(count))
        index = cls(k1=k1, b=b)
        index._lengths = np.asarray(lengths, dtype=np.float64)
        index._postings = {
            term: (np.asarray(ids, dtype=np.int64), np.asarray(tf_by_term[term], dtype=np.float64))
            for term, ids in docs_by_term.items()
        }
        return index

    def __len__(self) -> int:
        return len(self._lengths)

    def idf(self, term: str) -> float:
        """Lucene's always-positive idf: ln(1 + (N - n + 0.5) / (n + 0.5))."""
        n_docs = len(self._lengths)
        df = len(self._postings[term][0]) if term in self._postings else 0
        return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))

    def scores(self, query: Mapping[str, float]) -> np.ndarray:
        """BM25 score of every document for a query given as {term: weight}."""
        out = np.zeros(len(self._lengths), dtype=np.float64)
        if not len(self._lengths):
            return out
        avgdl = float(self._lengths.mean()) or 1.0
        for term, weight in query.items():
            posting = self._postings.get(term)
            if posting is None or weight <= 0:
                continue
            ids, tf = posting
            norm = self.k1 * (1.0 - self.b + self.b * self._lengths[ids] / avgdl)
            out[ids] += weight * self.idf(term) * tf * (self.k1 + 1.0) / (tf + norm)
        return out


def weighted_terms(parts: Iterable[tuple[str, float]]) -> Counter[str]:
    """Sum token counts over (text, weight) pairs into {term: weighted count}."""
    total: Counter[str] = Counter()
    for text, weight in parts:
        for token in tokenize(text):
            total[token] += weight
    return total
