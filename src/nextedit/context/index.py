"""The context index of a repository: file lines, definitions by name and BM25 over line chunks, per revision.

Work is cached per file version (path + blob id), so indexing another revision of the same
repository (the next mined commit, say) only reads and parses the files that changed; the
BM25 index is shared by all revisions and scored over the chunks of one revision at a time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from nextedit.context.bm25 import BM25Index, chunk_ranges, tokenize
from nextedit.context.definitions import Definition, extract_definitions, supported
from nextedit.context.repo_files import (
    LRUCache,
    list_tree,
    read_blobs,
    resolve,
    split_lines,
)


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


class RevisionBM25:
    """The repository's BM25 index seen through one revision's chunks."""

    def __init__(self, index: BM25Index, active: np.ndarray):
        self.index, self.active = index, active

    def __len__(self) -> int:
        return int(np.count_nonzero(self.active))

    def scores(self, query: dict[str, float] | Counter[str]) -> np.ndarray:
        """BM25 scores of every chunk id (0 for chunks not in this revision)."""
        return self.index.scores(query, self.active)


@dataclass
class RevisionIndex:
    """Everything retrieval needs about one commit of one repository."""

    repo: Path
    commit: str
    lines: dict[str, list[str]]
    definitions: dict[str, list[Definition]] = field(default_factory=dict)
    chunks: list[tuple[str, int, int]] = field(default_factory=list)
    bm25: RevisionBM25 | None = None

    @property
    def n_definitions(self) -> int:
        """How many definitions were indexed."""
        return sum(len(v) for v in self.definitions.values())

    @property
    def n_chunks(self) -> int:
        """How many BM25 chunks this revision has."""
        return len(self.bm25) if self.bm25 is not None else 0


@dataclass
class _FileVersion:
    lines: list[str]
    definitions: list[Definition]
    chunk_ids: range


class FileVersions:
    """Per-file-version work (lines, definitions, BM25 chunks), computed once per (path, version key)
    and shared by every view that contains that version (single-threaded use, or under a lock)."""

    def __init__(self, settings: IndexSettings):
        self.settings = settings
        self.bm25 = BM25Index(k1=settings.k1, b=settings.b)
        self.chunks: list[tuple[str, int, int]] = []
        self._files: dict[tuple[str, str], _FileVersion] = {}
        self.files_read = 0

    def get(self, path: str, key: str) -> _FileVersion | None:
        """The indexed version of `path` known as `key`, or None."""
        return self._files.get((path, key))

    def add(self, path: str, key: str, text: str) -> _FileVersion:
        """Index one file version (once: a known (path, key) is returned as it is)."""
        found = self._files.get((path, key))
        if found is not None:
            return found
        s = self.settings
        lines = split_lines(text)
        defs = extract_definitions(path, text) if s.definitions and supported(path) else []
        first = len(self.chunks)
        if s.bm25:
            path_terms = Counter({t: s.path_weight * c for t, c in Counter(tokenize(path)).items()})
            line_tokens = [tokenize(line) for line in lines]
            for start, end in chunk_ranges(lines, size=s.chunk_lines, overlap=s.chunk_overlap):
                terms = Counter(chain.from_iterable(line_tokens[start:end]))
                terms.update(path_terms)
                self.bm25.add(terms)
                self.chunks.append((path, start, end))
        version = _FileVersion(lines, defs, range(first, len(self.chunks)))
        self._files[(path, key)] = version
        self.files_read += 1
        return version

    def forget(self, path: str, key: str) -> None:
        """Drop a version's lines and definitions (its BM25 chunks stay, inactive, in the append-only index)."""
        self._files.pop((path, key), None)


class RepoIndex(FileVersions):
    """Per-file-version work for one repository, shared by all its revisions (single-threaded use)."""

    def __init__(self, root: Path, settings: IndexSettings):
        super().__init__(settings)
        self.root = root
        self._skipped: set[str] = set()  # blob ids that are binary

    def revision(self, commit: str) -> RevisionIndex:
        """The index of one commit, reading and parsing only file versions not seen before."""
        entries = [e for e in list_tree(self.root, commit)
                   if e.size <= self.settings.max_file_bytes and e.sha not in self._skipped]
        new = [e for e in entries if self.get(e.path, e.sha) is None]
        blobs = read_blobs(self.root, [e.sha for e in new])
        for entry in new:
            data = blobs.get(entry.sha)
            if data is None or is_binary(data):
                self._skipped.add(entry.sha)
                continue
            self.add(entry.path, entry.sha, data.decode("utf-8", "replace"))
        view = RevisionIndex(repo=self.root, commit=commit, lines={}, chunks=self.chunks)
        active = np.zeros(len(self.chunks), dtype=bool)
        for entry in entries:
            version = self.get(entry.path, entry.sha)
            if version is None:
                continue
            view.lines[entry.path] = version.lines
            for d in version.definitions:
                view.definitions.setdefault(d.name, []).append(d)
            active[version.chunk_ids.start : version.chunk_ids.stop] = True
        if self.settings.bm25:
            view.bm25 = RevisionBM25(self.bm25, active)
        return view


def is_binary(data: bytes) -> bool:
    """Whether file contents count as binary (a NUL byte in the first 8 KiB), as git guesses."""
    return b"\0" in data[:8192]


def build_index(repo: Path, commit: str, settings: IndexSettings) -> RevisionIndex:
    """Index one commit from scratch (no sharing with other revisions)."""
    return RepoIndex(repo, settings).revision(commit)


_REPOS: LRUCache[RepoIndex] = LRUCache(maxsize=2)
_REVISIONS: LRUCache[RevisionIndex] = LRUCache(maxsize=4)


def load_index(repo: str | Path, revision: str, settings: IndexSettings,
               cache: LRUCache[RevisionIndex] | None = None) -> RevisionIndex:
    """The index of `repo` at `revision`, kept in an LRU cache of revisions.

    Revisions of one repository share a `RepoIndex`, so a new revision costs only its changed files.
    """
    root, commit = resolve(repo, revision)
    key_root = str(root.resolve())
    cache = _REVISIONS if cache is None else cache
    repo_index = _REPOS.get_or_build((key_root, settings), lambda: RepoIndex(root, settings))
    return cache.get_or_build((key_root, commit, settings), lambda: repo_index.revision(commit))


def index_cache() -> LRUCache[RevisionIndex]:
    """The process-wide revision cache (resize with `.maxsize`)."""
    return _REVISIONS


def repo_cache() -> LRUCache[RepoIndex]:
    """The process-wide cache of per-repository shared work."""
    return _REPOS
