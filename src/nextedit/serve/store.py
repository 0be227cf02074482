"""The event store: every prediction and feedback event, durable before it is acknowledged.

SQLite in WAL mode with synchronous=FULL is the embedded default; PostgreSQL (psycopg) by URL.
One writer thread batches whatever is queued into one transaction (group commit), so a burst of
events costs one fsync, and a caller awaiting `append` is answered only after the commit.

Three tables with the same columns and a JSON `payload` (docs/serving.md):
- `requests`: collectable predict requests in the trace format of docs/traces.md (snapshot,
  prediction, reason, ...), which `nextedit import traces` turns into training examples;
- `events`: shown / accepted / rejected events, and settled events that may keep their text;
- `telemetry`: what only the server's reports read: one row per live or shadow prediction
  (timings, tokens, outcome; code only when collectable) and settled events without their text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

COLUMNS = ("at", "type", "request_id", "user_id", "client_id", "arm", "model_version")
TABLES = ("requests", "events", "telemetry")

_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
  id {id_type} PRIMARY KEY{autoincrement},
  at TEXT NOT NULL,
  type TEXT NOT NULL,
  request_id TEXT,
  user_id TEXT,
  client_id TEXT,
  arm TEXT,
  model_version TEXT,
  payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_at ON {table}(at);
CREATE INDEX IF NOT EXISTS {table}_request ON {table}(request_id);
"""
_SQLITE_SCHEMA = "".join(_TABLE.format(table=t, id_type="INTEGER", autoincrement=" AUTOINCREMENT") for t in TABLES)
_PG_SCHEMA = "".join(_TABLE.format(table=t, id_type="BIGSERIAL", autoincrement="") for t in TABLES)


class StoreError(RuntimeError):
    """The store cannot be opened or written."""


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds and a Z (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StoredEvent:
    """One row of the events table: id plus the JSON payload (which repeats the indexed columns)."""

    id: int
    payload: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.payload.get(key)


class _Closed:
    pass


class EventStore:
    """Append-only event log with a group-commit writer thread. Use `open_store(url)`."""

    placeholder = "?"

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, Any, concurrent.futures.Future[int]] | _Closed] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self.url = ""

    # -- backend specific ------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _insert(self, conn: Any, rows: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        raise NotImplementedError

    # -- writing -----------------------------------------------------------------------------
    def start(self) -> EventStore:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = threading.Thread(target=self._run, args=(ready,), name="event-store", daemon=True)
            self._thread.start()
            ready.result()
        return self

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn = self._connect()
        except Exception as exc:  # noqa: BLE001 - reported to start()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, _Closed):
                    return
                batch = [item]
                closing = False
                while len(batch) < 1000:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(nxt, _Closed):
                        closing = True
                        break
                    batch.append(nxt)
                try:
                    rows = [(table, _row(event() if callable(event) else event)) for table, event, _ in batch]
                    ids = self._insert(conn, rows)
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                    for _, _, fut in batch:
                        fut.set_exception(StoreError(f"event store {self.url}: write failed: {exc}"))
                else:
                    for (_, _, fut), row_id in zip(batch, ids, strict=True):
                        fut.set_result(row_id)
                if closing:
                    return
        finally:
            conn.close()
            self._stopped.set()

    def submit(self, event: dict[str, Any] | Callable[[], dict[str, Any]],
               table: str = "events") -> concurrent.futures.Future[int]:
        """Queue an event for `table`; the future resolves to its row id once committed (durable).

        `event` may be a function returning the event: it is then built on the writer thread, off
        the request path (prediction logs compute a few metrics).
        """
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        if self._thread is None:
            self.start()
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        if isinstance(event, dict):
            event.setdefault("at", utc_now())
        self._queue.put((table, event, fut))
        return fut

    async def append(self, event: dict[str, Any], table: str = "events") -> int:
        """Store an event and return its row id once it is durable (committed and synced)."""
        return await asyncio.wrap_future(self.submit(event, table))

    def append_sync(self, event: dict[str, Any], table: str = "events") -> int:
        """`append` for synchronous callers."""
        return self.submit(event, table).result()

    def close(self) -> None:
        """Flush what is queued and stop the writer thread."""
        if self._thread is not None:
            self._queue.put(_Closed())
            self._thread.join()
            self._thread = None

    # -- reading -----------------------------------------------------------------------------
    def _select(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def events(self, *, since: str | None = None, types: tuple[str, ...] | None = None,
               tables: tuple[str, ...] = TABLES) -> Iterator[StoredEvent]:
        """Stored rows of `tables` (each in id order), optionally from time `since` (ISO) and of some types."""
        p = self.placeholder
        where, params = ["1 = 1"], []
        if since:
            where.append(f"at >= {p}")
            params.append(since)
        if types:
            where.append(f"type IN ({', '.join([p] * len(types))})")
            params.extend(types)
        for table in tables:
            sql = f"SELECT id, payload FROM {table} WHERE {' AND '.join(where)} ORDER BY id"
            for row_id, payload in self._select(sql, tuple(params)):
                data = orjson.loads(payload)
                data["event_id"] = row_id
                yield StoredEvent(row_id, data)

    def by_request(self, request_id: str, table: str = "telemetry", type_: str | None = None) -> list[StoredEvent]:
        """Rows of one request in one table (optionally of one type), in id order."""
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}")
        p = self.placeholder
        sql = f"SELECT id, payload FROM {table} WHERE request_id = {p}"
        params: tuple[Any, ...] = (request_id,)
        if type_:
            sql += f" AND type = {p}"
            params += (type_,)
        return [StoredEvent(i, orjson.loads(pl)) for i, pl in self._select(sql + " ORDER BY id", params)]

    def count(self, table: str = "events") -> int:
        """How many rows `table` holds."""
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}")
        return int(self._select(f"SELECT COUNT(*) FROM {table}", ())[0][0])


def _row(event: dict[str, Any]) -> tuple[Any, ...]:
    event.setdefault("at", utc_now())
    values = [event.get(c) for c in COLUMNS]
    values = [None if v is None else str(v) for v in values]
    return (*values, orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS).decode())


class SQLiteStore(EventStore):
    """SQLite file in WAL mode, synchronous=FULL (a commit survives power loss before the ack)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._open()
            conn.executescript(_SQLITE_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a SQLite event store ({exc})") from None
        conn.close()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _connect(self) -> sqlite3.Connection:
        return self._open()

    def _insert(self, conn: sqlite3.Connection, rows: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        ids = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, row in rows:
                cur = conn.execute(
                    f"INSERT INTO {table} (at, type, request_id, user_id, client_id, arm, model_version, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                ids.append(int(cur.lastrowid or 0))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


class PostgresStore(EventStore):
    """PostgreSQL through psycopg 3 (`pip install 'psycopg[binary]'`); commits before the ack."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError("a postgresql:// store needs psycopg: pip install 'psycopg[binary]'") from None
        self.url = url
        with self._connect() as conn:
            conn.execute(_PG_SCHEMA)
            conn.commit()

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.url.split('@')[-1]}: {exc}") from None

    def _insert(self, conn: Any, rows: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        ids = []
        with conn.cursor() as cur:
            for table, row in rows:
                cur.execute(
                    f"INSERT INTO {table} (at, type, request_id, user_id, client_id, arm, model_version, payload) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id", row)
                ids.append(int(cur.fetchone()[0]))
        conn.commit()
        return ids

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._connect() as conn:
            return list(conn.execute(sql, params).fetchall())


def open_store(url: str | Path) -> EventStore:
    """The store named by a path, `sqlite:///PATH`, or a `postgresql://` URL."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    elif "://" in text:
        raise StoreError(f"unknown store URL {text!r}: use a file path, sqlite:///PATH or postgresql://...")
    return SQLiteStore(text)
