"""The per-revision context index of a repository: file lines, definitions by name, BM25 over line chunks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from nextedit.context.bm25 import BM25Index, chunk_ranges, tokenize
from nextedit.context.definitions import Definition, extract_definitions, supported
from nextedit.context.repo_files import LRUCache, read_text_files, resolve, split_lines


@dataclass(frozen=True)
class IndexSettings:
    """What shapes an index (part of its cache key)."""

    max_file_bytes: int = 1_000_000
    chunk_lines: int = 40
    chunk_overlap: int = 10
    k1: float = 1.2
    b: float = 0.75
    path_weight: float = 2.0
    definitions: bool = True
    bm25: bool = True


@dataclass
class RevisionIndex:
    """Everything retrieval needs about one commit of one repository."""

    repo: Path
    commit: str
    lines: dict[str, list[str]]
    definitions: dict[str, list[Definition]] = field(default_factory=dict)
    chunks: list[tuple[str, int, int]] = field(default_factory=list)
    bm25: BM25Index | None = None

    @property
    def n_definitions(self) -> int:
        """How many definitions were indexed."""
        return sum(len(v) for v in self.definitions.values())


def build_index(repo: Path, commit: str, settings: IndexSettings) -> RevisionIndex:
    """Read every text file of the commit and index its definitions and chunks."""
    files = read_text_files(repo, commit, max_bytes=settings.max_file_bytes)
    index = RevisionIndex(repo=repo, commit=commit,
                          lines={p: split_lines(t) for p, t in files.items()})
    if settings.definitions:
        for path, text in files.items():
            if supported(path):
                for definition in extract_definitions(path, text):
                    index.definitions.setdefault(definition.name, []).append(definition)
    if settings.bm25:
        documents: list[Counter[str]] = []
        for path, lines in index.lines.items():
            path_terms = Counter({t: settings.path_weight * c for t, c in Counter(tokenize(path)).items()})
            line_tokens = [tokenize(line) for line in lines]
            for start, end in chunk_ranges(lines, size=settings.chunk_lines,
                                           overlap=settings.chunk_overlap):
                terms = Counter(chain.from_iterable(line_tokens[start:end]))
                terms.update(path_terms)
                documents.append(terms)
                index.chunks.append((path, start, end))
        index.bm25 = BM25Index.build(documents, k1=settings.k1, b=settings.b)
    return index


_CACHE: LRUCache[RevisionIndex] = LRUCache(maxsize=4)


def load_index(repo: str | Path, revision: str, settings: IndexSettings,
               cache: LRUCache[RevisionIndex] | None = None) -> RevisionIndex:
    """The index of `repo` at `revision`, built once per (repo, commit, settings) and kept in an LRU cache."""
    root, commit = resolve(repo, revision)
    cache = _CACHE if cache is None else cache
    return cache.get_or_build((str(root.resolve()), commit, settings),
                              lambda: build_index(root, commit, settings))


def index_cache() -> LRUCache[RevisionIndex]:
    """The process-wide index cache (resize with `.maxsize`)."""
    return _CACHE
