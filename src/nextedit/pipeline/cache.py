"""Content-addressed stage result cache, key = sha256(stage, version, config, fields read): SQLite (WAL) on one
node, or a folder / object-store URL of one file per result that every node of a cluster can reach."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = ["DROPPED", "OUTPUT", "DirectoryCache", "ResultCache", "cache_key", "default_cache_path", "open_cache"]

OUTPUT = 0  # value: the changed top-level fields of the example
DROPPED = 1  # the stage returned None for this input

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    version TEXT NOT NULL,
    kind INTEGER NOT NULL,
    value BLOB,
    created REAL NOT NULL
) WITHOUT ROWID
"""


def default_cache_path() -> Path:
    """`$NEXTEDIT_CACHE`, else `.nextedit/cache.sqlite` under the current folder."""
    env = os.environ.get("NEXTEDIT_CACHE")
    return Path(env) if env else Path(".nextedit") / "cache.sqlite"


def cache_key(stage: str, version: str, config_hash: str, fields: dict[str, Any]) -> str:
    """The cache key of one example for one stage: hex sha256 of canonical JSON of all four parts."""
    blob = orjson.dumps([stage, version, config_hash, fields],
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(blob).hexdigest()


class ResultCache:
    """One SQLite file shared by all stages. Many readers (worker processes) and one writer (the runner)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[int, bytes | None]]:
        """Cached (kind, value) per key found; missing keys are absent."""
        found: dict[str, tuple[int, bytes | None]] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for key, kind, value in self._db.execute(
                    f"SELECT key, kind, value FROM results WHERE key IN ({marks})", chunk):
                found[key] = (kind, value)
        return found

    def get(self, key: str) -> tuple[int, bytes | None] | None:
        """Cached (kind, value) for one key, or None."""
        return self.get_many([key]).get(key)

    def put_many(self, rows: Iterable[tuple[str, str, str, int, bytes | None]], *, commit: bool = True) -> None:
        """Store (key, stage, version, kind, value) rows; an existing key is replaced."""
        now = time.time()
        self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                             [(k, s, v, kind, value, now) for k, s, v, kind, value in rows])
        if commit:
            self._db.commit()

    def count(self, stage: str | None = None) -> int:
        """How many results are stored (for one stage, or all)."""
        if stage is None:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM results WHERE stage = ?", (stage,)).fetchone()[0]

    def summary(self) -> list[tuple[str, str, int, int]]:
        """(stage, version, results, bytes of stored values) per stage version."""
        return list(self._db.execute(
            "SELECT stage, version, COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM results "
            "GROUP BY stage, version ORDER BY stage, version"))

    def clear(self, stage: str | None = None) -> int:
        """Delete stored results (of one stage, or all); return how many."""
        if stage is None:
            cur = self._db.execute("DELETE FROM results")
        else:
            cur = self._db.execute("DELETE FROM results WHERE stage = ?", (stage,))
        self._db.commit()
        return cur.rowcount

    def close(self) -> None:
        """Commit and close the connection."""
        try:
            self._db.commit()
        finally:
            self._db.close()


class DirectoryCache:
    """The result cache as content-addressed files under one folder or object-store URL (fsspec), so every
    node of a cluster reads and writes the same results: `ROOT/<key[:2]>/<key>` holds one byte of kind
    and the value. Files are written whole and renamed into place, so a reader sees a result or none."""

    def __init__(self, url: str | os.PathLike[str]):
        import fsspec

        self.url = str(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.fs.makedirs(self.root, exist_ok=True)
        self.path = self.url

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}"

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[int, bytes | None]]:
        """Cached (kind, value) per key found; missing keys are absent."""
        found: dict[str, tuple[int, bytes | None]] = {}
        for key in keys:
            try:
                with self.fs.open(self._path(key), "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                continue
            if data:
                found[key] = (data[0], data[1:] if data[0] == OUTPUT else None)
        return found

    def get(self, key: str) -> tuple[int, bytes | None] | None:
        """Cached (kind, value) for one key, or None."""
        return self.get_many([key]).get(key)

    def put_many(self, rows: Iterable[tuple[str, str, str, int, bytes | None]], *, commit: bool = True) -> None:
        """Store (key, stage, version, kind, value) rows (atomically per row; `commit` is accepted for
        interface parity with ResultCache)."""
        for key, _stage, _version, kind, value in rows:
            path = self._path(key)
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{time.monotonic_ns()}.tmp"
            with self.fs.open(tmp, "wb") as fh:
                fh.write(bytes([kind]) + (value or b""))
            self.fs.mv(tmp, path)

    def count(self, stage: str | None = None) -> int:
        """How many results are stored (all stages: the files carry no stage name)."""
        return sum(1 for p in self.fs.find(self.root) if not p.endswith(".tmp"))

    def close(self) -> None:
        """Nothing to close (files are written whole)."""


def open_cache(location: str | os.PathLike[str]) -> ResultCache | DirectoryCache:
    """The result cache at `location`: a SQLite file (the local default), or a folder / object-store URL
    (`s3://`, `gs://`, `file://`) holding a DirectoryCache that every node of a cluster can reach."""
    text = str(location)
    if "://" in text or text.endswith(("/", os.sep)) or Path(text).is_dir():
        return DirectoryCache(text)
    return ResultCache(text)
