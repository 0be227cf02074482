"""The context index of a live folder (an editor's workspace): files from disk or the editor, updated one file at a time.

It holds the same per-file-version work as the per-revision index of a git repository
(`context/index.py`: lines, tree-sitter definitions, BM25 chunks) and offers the same
`RevisionIndex` view to `retrieve`, so related code at serve time comes from the same code and
settings as the `context` stage at training time. A change to one file re-indexes that file only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextedit.context.index import (
    FileVersions,
    IndexSettings,
    RevisionBM25,
    RevisionIndex,
    is_binary,
)

#: Folders never walked when the workspace is not a git repository.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                       ".mypy_cache", ".pytest_cache", ".ruff_cache", "target", "dist", "build"})


@dataclass(frozen=True)
class _Stat:
    size: int
    mtime_ns: int


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def list_workspace(root: Path) -> list[str]:
    """Relative POSIX paths of the workspace's files, sorted: git's tracked and untracked-but-not-ignored
    files in a git work tree (what the repository would hold), else every file outside hidden and
    build folders."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0:
        paths = {p.decode("utf-8", "replace") for p in out.stdout.split(b"\0") if p}
        return sorted(paths, key=lambda p: p.encode("utf-8", "surrogateescape"))
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        rel = Path(folder).relative_to(root)
        found.extend((rel / f).as_posix() for f in files)
    return sorted(found, key=lambda p: p.encode("utf-8", "surrogateescape"))


class WorkspaceIndex:
    """A `RevisionIndex` of a folder kept current file by file (thread-safe: every method takes the lock).

    Each path shows one text: the editor's (`set_texts`) when it gave one, else the file on disk.
    Changing a path's text indexes the new version and retires the old one: its definitions and
    lines leave the view and its BM25 chunks become inactive (the BM25 index is append-only and is
    rebuilt once retired chunks outnumber live ones).
    """

    def __init__(self, root: str | Path, settings: IndexSettings | None = None,
                 exclude: Callable[[str], bool] | None = None):
        self.root = Path(root).resolve()
        self.settings = settings or IndexSettings()
        #: Paths never read or shown (an editor's excluded files: keys, .env, secrets).
        self.exclude = exclude
        self.lock = threading.RLock()
        self._reset()
        self._stats: dict[str, _Stat] = {}
        self._editor: set[str] = set()  # paths whose text came from the editor, not the disk
        self.scanned_at: float | None = None
        self.rebuilds = 0

    def _reset(self) -> None:
        self.versions = FileVersions(self.settings)
        self._current: dict[str, str] = {}  # path -> version key shown
        self._buffer = np.zeros(1024, dtype=bool)
        self._active = self._buffer[:0]
        self.view = RevisionIndex(repo=self.root, commit="workspace", lines={}, chunks=self.versions.chunks)
        if self.settings.bm25:
            self.view.bm25 = RevisionBM25(self.versions.bm25, self._active)

    # ------------------------------------------------------------------ one file

    def _retire(self, path: str) -> None:
        key = self._current.pop(path, None)
        if key is None:
            return
        version = self.versions.get(path, key)
        self.view.lines.pop(path, None)
        if version is None:
            return
        for d in version.definitions:
            defs = self.view.definitions.get(d.name)
            if defs is not None:
                defs[:] = [x for x in defs if x is not d]
                if not defs:
                    del self.view.definitions[d.name]
        self._active[version.chunk_ids.start:version.chunk_ids.stop] = False
        self.versions.forget(path, key)

    def _show(self, path: str, text: str | None) -> bool:
        """Show `text` for `path` (None: the path has no file); True when the view changed."""
        key = None if text is None else _key(text)
        if key == self._current.get(path):
            return False
        self._retire(path)
        if text is None:
            return True
        version = self.versions.add(path, key, text)  # type: ignore[arg-type]
        self._current[path] = key  # type: ignore[assignment]
        self.view.lines[path] = version.lines
        for d in version.definitions:
            self.view.definitions.setdefault(d.name, []).append(d)
        n = len(self.versions.chunks)
        if len(self._buffer) < n:  # grow by doubling; the view's mask is a slice of exactly n chunks
            grown = np.zeros(max(n, 2 * len(self._buffer)), dtype=bool)
            grown[:len(self._buffer)] = self._buffer
            self._buffer = grown
        self._active = self._buffer[:n]
        self._active[version.chunk_ids.start:version.chunk_ids.stop] = True
        if self.view.bm25 is not None:
            self.view.bm25.active = self._active
        return True

    def _read_disk(self, path: str) -> tuple[str | None, _Stat | None]:
        full = self.root / path
        try:
            st = full.stat()
        except OSError:
            return None, None
        stat = _Stat(st.st_size, st.st_mtime_ns)
        if self.exclude is not None and self.exclude(path):
            return None, stat
        if not full.is_file() or st.st_size > self.settings.max_file_bytes:
            return None, stat
        try:
            data = full.read_bytes()
        except OSError:
            return None, stat
        if is_binary(data):
            return None, stat
        return data.decode("utf-8", "replace"), stat

    def update_from_disk(self, path: str) -> bool:
        """Re-read one file from disk (after a save or a watched-file change), unless the editor's text
        stands for it; True when the view changed."""
        with self.lock:
            if path in self._editor:
                return False
            text, stat = self._read_disk(path)
            if stat is None:
                self._stats.pop(path, None)
            else:
                self._stats[path] = stat
            changed = self._show(path, text)
            self._maybe_compact()
            return changed

    # ------------------------------------------------------------------ many files

    def scan(self) -> int:
        """Bring the view up to date with the disk: new, changed (size or mtime) and deleted files;
        the number of paths whose text changed."""
        with self.lock:
            paths = list_workspace(self.root)
            changed = 0
            listed = set(paths)
            for path in [p for p in self._stats if p not in listed]:
                self._stats.pop(path, None)
                if path not in self._editor:
                    changed += self._show(path, None)
            for path in paths:
                if path in self._editor:
                    continue
                try:
                    st = (self.root / path).stat()
                except OSError:
                    continue
                stat = _Stat(st.st_size, st.st_mtime_ns)
                if self._stats.get(path) == stat and (path in self._current or stat.size > self.settings.max_file_bytes):
                    continue
                text, stat2 = self._read_disk(path)
                self._stats[path] = stat2 or stat
                changed += self._show(path, text)
            self.scanned_at = time.monotonic()
            self._maybe_compact()
            return changed

    def set_texts(self, texts: dict[str, str]) -> int:
        """Show the editor's text for these paths; paths given before but not now go back to the disk.
        The number of paths whose text changed."""
        with self.lock:
            changed = 0
            for path in sorted(self._editor - texts.keys()):
                self._editor.discard(path)
                text, stat = self._read_disk(path)
                if stat is not None:
                    self._stats[path] = stat
                changed += self._show(path, text)
            for path in sorted(texts):
                if self.exclude is not None and self.exclude(path):
                    continue
                self._editor.add(path)
                changed += self._show(path, texts[path])
            self._maybe_compact()
            return changed

    def text_of(self, path: str) -> str | None:
        """The text the view shows for a path (None when it has no such text file)."""
        with self.lock:
            lines = self.view.lines.get(path)
            return None if lines is None else "".join(lines)

    def _maybe_compact(self) -> None:
        live = int(np.count_nonzero(self._active))
        if len(self.versions.chunks) - live <= max(live, 10_000):
            return
        texts = {p: "".join(self.view.lines[p]) for p in self._current}
        self._reset()
        for path in sorted(texts, key=lambda p: p.encode("utf-8", "surrogateescape")):
            self._show(path, texts[path])
        self.rebuilds += 1

    @property
    def n_files(self) -> int:
        """How many text files the view shows."""
        return len(self._current)
