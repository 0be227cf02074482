"""The request cache: SQLite, content-addressed by provider, model, parameters and messages."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import orjson

from nextedit.llm.types import ChatRequest, Completion

__all__ = ["RequestCache", "cache_key", "default_cache_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request BLOB NOT NULL,
    response BLOB NOT NULL,
    via TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


def default_cache_path() -> Path:
    """`$NEXTEDIT_LLM_CACHE`, else `~/.cache/nextedit/llm_cache.sqlite` (shared by every project)."""
    env = os.environ.get("NEXTEDIT_LLM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nextedit" / "llm_cache.sqlite"


def cache_key(provider: str, model: str, req: ChatRequest) -> str:
    """sha256 over everything that changes the answer (metadata is left out)."""
    payload = {
        "provider": provider, "model": model, "system": req.system, "messages": req.messages,
        "max_tokens": req.max_tokens, "temperature": req.temperature, "n": req.n, "seed": req.seed,
        "stop": req.stop,
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


class RequestCache:
    """Completed requests by key; safe to share between threads, processes and runs (WAL)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> Completion | None:
        """The stored completion (marked from_cache) or None."""
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        completion = Completion.model_validate(orjson.loads(row[0]))
        completion.from_cache = True
        return completion

    def has(self, key: str) -> bool:
        """Whether the key is stored."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, provider: str, model: str, req: ChatRequest, completion: Completion) -> None:
        """Store (or replace) the completion for key, durably before returning."""
        stored = completion.model_copy(update={"from_cache": False})
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, provider, model, orjson.dumps(req.model_dump(exclude={"metadata"})),
                 orjson.dumps(stored.model_dump()), stored.via, time.time()))

    def __bool__(self) -> bool:
        return True  # an empty cache is still a cache

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
