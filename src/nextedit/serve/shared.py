"""Cross-process state of `nextedit serve` (cancellation, kept-rate join, config reloads, rate limits).

Several workers (`--workers N`) and replicas agree through one shared component (docs/serving.md,
"Scaling out"):

- `postgresql://...`: PostgreSQL. Supersession and reload messages go out with NOTIFY on channel
  `nextedit_shared` (each process LISTENs on its own connection); a sequence orders requests, and
  two tables hold remembered predictions and rate-limit counters.
- a SQLite file (the one-node default: `<store>-shared.db` next to a SQLite event store): the same
  tables plus an append-only message log that each process polls while it has requests in flight.
- `memory`: this process only (one worker; nothing is written).

Messages carry a global sequence number: a request is superseded by any later-numbered request of
the same (client, file), wherever it runs, so no two processes ever cancel each other's newest one.
Remembered predictions (the regions kept rate is computed from) live for `remember_s` and are then
deleted; they never enter the event store unless the client marked the request collectable.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("nextedit.serve")

#: (kind, key, seq, value): kind "cancel" (key = client/file, value = request id) or "config" (value = version).
Listener = Callable[[str, str, int, str], None]
CHANNEL = "nextedit_shared"


class SharedStateError(RuntimeError):
    """The shared-state component cannot be opened or used."""


class SharedState:
    """One process's handle on the shared component. Every method but `start`/`close` may block
    (call them from a thread); each thread uses its own connection."""

    url = "memory"

    def __init__(self) -> None:
        self._local = threading.local()
        self._listener: Listener | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[float, str]] = {}
        self._counters: dict[str, tuple[float, int]] = {}
        self._writes = 0
        #: Set while this process has requests in flight (pollers poll fast then).
        self.busy = threading.Event()

    @property
    def shared(self) -> bool:
        """Whether other processes see this state (False for `memory`)."""
        return False

    def start(self, listener: Listener) -> None:
        """Deliver messages of other processes (and this one) to `listener`, on a background thread."""
        self._listener = listener

    def close(self) -> None:
        """Stop listening and close this thread's connection."""
        self._stop.set()
        self.busy.set()  # wake an idle poller
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- messages ----------------------------------------------------------------------------
    def announce(self, key: str, request_id: str) -> int:
        """Tell every process that `request_id` is now the newest request for `key`; its sequence number."""
        with self._lock:
            self._seq += 1
            return self._seq

    def publish_config(self, version: str) -> None:
        """Tell every process that the config file now has `version` (they reload)."""

    # -- remembered predictions -----------------------------------------------------------------
    def remember(self, request_id: str, info: dict[str, Any], ttl_s: float) -> None:
        """Keep `info` about a request for `ttl_s` seconds, readable by every process."""
        with self._lock:
            self._memory[request_id] = (time.time() + ttl_s, json.dumps(info))
            self._writes += 1
            if self._writes % 500 == 0:
                now = time.time()
                self._memory = {k: v for k, v in self._memory.items() if v[0] > now}

    def recall(self, request_id: str) -> dict[str, Any] | None:
        """What `remember` kept about a request, or None (unknown or expired)."""
        item = self._memory.get(request_id)
        return json.loads(item[1]) if item and item[0] > time.time() else None

    # -- rate limits ---------------------------------------------------------------------------
    def hit(self, bucket: str, ttl_s: float) -> int:
        """Count one hit on `bucket` (kept for `ttl_s`); the bucket's count including this hit."""
        with self._lock:
            now = time.time()
            expires, n = self._counters.get(bucket, (now + ttl_s, 0))
            if expires <= now:
                expires, n = now + ttl_s, 0
            self._counters[bucket] = (expires, n + 1)
            if len(self._counters) > 100_000:
                self._counters = {k: v for k, v in self._counters.items() if v[0] > now}
            return n + 1

    def _deliver(self, kind: str, key: str, seq: int, value: str) -> None:
        if self._listener is not None:
            try:
                self._listener(kind, key, seq, value)
            except Exception:
                log.exception("shared-state listener failed")


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS nextedit_messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nextedit_recent (request_id TEXT PRIMARY KEY, expires REAL NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nextedit_counters (bucket TEXT PRIMARY KEY, expires REAL NOT NULL, n INTEGER NOT NULL);
"""

#: Poll intervals (seconds) of the SQLite message log: with requests in flight, and idle.
POLL_BUSY_S, POLL_IDLE_S = 0.01, 0.25
#: Messages older than this are pruned from the SQLite log.
MESSAGE_TTL_S = 60.0


class SQLiteShared(SharedState):
    """Shared state in a SQLite file for the workers of one host (WAL, synchronous=NORMAL: this state
    is short-lived, so a commit need not survive power loss, only a process's death)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._conn()
            conn.executescript(_SQLITE_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise SharedStateError(f"{self.path}: not a nextedit shared-state file ({exc})") from None

    @property
    def shared(self) -> bool:
        return True

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit, never corrupted
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def start(self, listener: Listener) -> None:
        super().start(listener)
        row = self._conn().execute("SELECT COALESCE(MAX(seq), 0) FROM nextedit_messages").fetchone()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, args=(int(row[0]),), name="shared-poll", daemon=True)
        self._thread.start()

    def _poll(self, last: int) -> None:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        try:
            while not self._stop.is_set():
                try:
                    rows = conn.execute("SELECT seq, kind, key, value FROM nextedit_messages WHERE seq > ? ORDER BY seq",
                                        (last,)).fetchall()
                except sqlite3.Error as exc:
                    log.warning("shared state %s: poll failed: %s", self.path, exc)
                    rows = []
                for seq, kind, key, value in rows:
                    last = max(last, int(seq))
                    self._deliver(kind, key, int(seq), value)
                self.busy.wait(POLL_IDLE_S)
                self._stop.wait(POLL_BUSY_S)
        finally:
            conn.close()

    def _message(self, kind: str, key: str, value: str) -> int:
        conn = self._conn()
        now = time.time()
        cur = conn.execute("INSERT INTO nextedit_messages (at, kind, key, value) VALUES (?, ?, ?, ?)",
                           (now, kind, key, value))
        seq = int(cur.lastrowid or 0)
        if seq % 1000 == 0:
            conn.execute("DELETE FROM nextedit_messages WHERE at < ? AND seq < ?", (now - MESSAGE_TTL_S, seq))
        return seq

    def announce(self, key: str, request_id: str) -> int:
        return self._message("cancel", key, request_id)

    def publish_config(self, version: str) -> None:
        self._message("config", "", version)

    def remember(self, request_id: str, info: dict[str, Any], ttl_s: float) -> None:
        conn = self._conn()
        now = time.time()
        conn.execute("INSERT OR REPLACE INTO nextedit_recent (request_id, expires, info) VALUES (?, ?, ?)",
                     (request_id, now + ttl_s, json.dumps(info)))
        self._writes += 1
        if self._writes % 500 == 0:
            conn.execute("DELETE FROM nextedit_recent WHERE expires < ?", (now,))

    def recall(self, request_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT info FROM nextedit_recent WHERE request_id = ? AND expires > ?",
                                   (request_id, time.time())).fetchone()
        return json.loads(row[0]) if row else None

    def hit(self, bucket: str, ttl_s: float) -> int:
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM nextedit_counters WHERE bucket = ? AND expires <= ?", (bucket, now))
            row = conn.execute(
                "INSERT INTO nextedit_counters (bucket, expires, n) VALUES (?, ?, 1) "
                "ON CONFLICT(bucket) DO UPDATE SET n = n + 1 RETURNING n", (bucket, now + ttl_s)).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(row[0])

    def close(self) -> None:
        super().close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


_PG_SCHEMA = """
SELECT pg_advisory_xact_lock(4242017);
CREATE SEQUENCE IF NOT EXISTS nextedit_shared_seq;
CREATE TABLE IF NOT EXISTS nextedit_recent (
  request_id TEXT PRIMARY KEY, expires DOUBLE PRECISION NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nextedit_counters (
  bucket TEXT PRIMARY KEY, expires DOUBLE PRECISION NOT NULL, n BIGINT NOT NULL);
"""


class PostgresShared(SharedState):
    """Shared state in PostgreSQL: NOTIFY/LISTEN for messages, tables for the rest (psycopg 3)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise SharedStateError("postgresql shared state needs psycopg: pip install 'nextedit[serve]'") from None
        self.url = url
        conn = self._connect()
        try:
            with conn.transaction():
                for statement in filter(str.strip, _PG_SCHEMA.split(";")):
                    conn.execute(statement)
        finally:
            conn.close()

    @property
    def shared(self) -> bool:
        return True

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            raise SharedStateError(f"shared state: cannot connect to {self.url.split('@')[-1]}: {exc}") from None

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _run(self, sql: str, params: tuple[Any, ...]) -> Any:
        import psycopg

        try:
            return self._conn().execute(sql, params).fetchone()
        except psycopg.OperationalError:  # a dropped connection: reconnect once
            self._local.conn = None
            return self._conn().execute(sql, params).fetchone()

    def start(self, listener: Listener) -> None:
        super().start(listener)
        self._stop.clear()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, args=(ready,), name="shared-listen", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise SharedStateError(f"shared state: LISTEN on {self.url.split('@')[-1]} did not start within 10 s")

    def _listen(self, ready: threading.Event) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            msg = json.loads(note.payload)
                            self._deliver(msg["kind"], msg.get("key", ""), int(msg.get("seq", 0)), msg["value"])
            except psycopg.Error as exc:
                log.warning("shared state: LISTEN connection lost (%s); reconnecting", exc)
                self._stop.wait(0.5)

    def announce(self, key: str, request_id: str) -> int:
        row = self._run(
            "SELECT s, pg_notify(%s, json_build_object('kind', 'cancel', 'seq', s, 'key', %s::text, "
            "'value', %s::text)::text) FROM (SELECT nextval('nextedit_shared_seq') AS s) t",
            (CHANNEL, key, request_id))
        return int(row[0])

    def publish_config(self, version: str) -> None:
        self._run("SELECT pg_notify(%s, json_build_object('kind', 'config', 'value', %s::text)::text)",
                  (CHANNEL, version))

    def remember(self, request_id: str, info: dict[str, Any], ttl_s: float) -> None:
        now = time.time()
        self._run("INSERT INTO nextedit_recent (request_id, expires, info) VALUES (%s, %s, %s) "
                  "ON CONFLICT (request_id) DO UPDATE SET expires = EXCLUDED.expires, info = EXCLUDED.info "
                  "RETURNING 1", (request_id, now + ttl_s, json.dumps(info)))
        self._writes += 1
        if self._writes % 500 == 0:
            self._run("WITH gone AS (DELETE FROM nextedit_recent WHERE expires < %s RETURNING 1) "
                      "SELECT COUNT(*) FROM gone", (now,))

    def recall(self, request_id: str) -> dict[str, Any] | None:
        row = self._run("SELECT info FROM nextedit_recent WHERE request_id = %s AND expires > %s",
                        (request_id, time.time()))
        return json.loads(row[0]) if row else None

    def hit(self, bucket: str, ttl_s: float) -> int:
        now = time.time()
        row = self._run(
            "INSERT INTO nextedit_counters (bucket, expires, n) VALUES (%s, %s, 1) ON CONFLICT (bucket) DO UPDATE "
            "SET n = CASE WHEN nextedit_counters.expires <= %s THEN 1 ELSE nextedit_counters.n + 1 END, "
            "expires = CASE WHEN nextedit_counters.expires <= %s THEN EXCLUDED.expires "
            "ELSE nextedit_counters.expires END RETURNING n", (bucket, now + ttl_s, now, now))
        return int(row[0])

    def close(self) -> None:
        super().close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def shared_url(configured: str | None, store_url: str) -> str:
    """The shared component to use: the configured one, else the event store's PostgreSQL, else a
    SQLite side file next to the SQLite event store (`<store>-shared.db`); in memory beside an in-memory store."""
    if configured:
        return configured
    if store_url.startswith(("postgresql://", "postgres://")):
        return store_url
    path = store_url.removeprefix("sqlite:///")
    if path in (":memory:", ""):
        return "memory"  # nothing to share with, and no file to leave in the working directory
    return f"{path}-shared.db"


def open_shared(url: str) -> SharedState:
    """`memory`, a SQLite file path (or sqlite:///PATH), or a postgresql:// URL."""
    if url == "memory":
        return SharedState()
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresShared(url)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///"):]
    elif "://" in url:
        raise SharedStateError(f"unknown shared-state URL {url!r}: use memory, a file path, sqlite:///PATH "
                               "or postgresql://...")
    return SQLiteShared(url)
