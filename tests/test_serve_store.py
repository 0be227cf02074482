"""The event store: group commit, durability across kill -9, tables, PostgreSQL when a server is given."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from nextedit.serve.store import StoreError, open_store


def test_append_returns_ids_after_commit_and_reads_back(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'ev.db'}").start()
    try:
        ids = [store.append_sync({"type": "shown", "request_id": f"r{i}", "arm": "a"}) for i in range(5)]
        futures = [store.submit({"type": "accepted", "request_id": f"r{i}", "arm": "b"}) for i in range(200)]
        ids += [f.result() for f in futures]
        store.submit({"type": "predicted", "request_id": "r0", "total_ms": 3.5}, "telemetry").result()
        store.submit(lambda: {"type": "shadow", "request_id": "r1", "arm": "s"}, "telemetry").result()
        assert len(set(ids)) == 205
        # WAL + synchronous=FULL as documented.
        conn = sqlite3.connect(tmp_path / "ev.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 205
        conn.close()
        assert [e["type"] for e in store.events(tables=("telemetry",))] == ["predicted", "shadow"]
        assert store.count("events") == 205 and store.count("requests") == 0
        assert [e["request_id"] for e in store.by_request("r0", "events")] == ["r0", "r0"]
        assert all(e["at"].endswith("Z") for e in store.events(types=("shown",)))
        with pytest.raises(StoreError, match="unknown table"):
            store.submit({"type": "x"}, "nope")
    finally:
        store.close()


def test_acknowledged_events_survive_kill_9(tmp_path):
    db = tmp_path / "ev.db"
    child = textwrap.dedent(f"""
        import sys, time
        from nextedit.serve.store import open_store
        store = open_store({str(db)!r}).start()
        i = 0
        while True:
            futures = [store.submit({{"type": "shown", "request_id": f"r{{i}}-{{k}}"}}) for k in range(20)]
            for f in futures:
                print(f.result(), flush=True)   # acknowledged = committed
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    acked = []
    for line in proc.stdout:
        acked.append(int(line))
        if len(acked) >= 500:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acked += [int(x) for x in proc.stdout.read().split()]
    conn = sqlite3.connect(db)
    stored = {r[0] for r in conn.execute("SELECT id FROM events")}
    conn.close()
    assert len(acked) >= 500 and not [i for i in acked if i not in stored]


def test_unknown_store_url_is_a_clear_error():
    with pytest.raises(StoreError, match="unknown store URL"):
        open_store("mysql://localhost/db")


def test_postgres_store_round_trip():
    """Against $NEXTEDIT_TEST_POSTGRES_URL when set, else a throwaway local cluster (tests/postgres_support.py)."""
    from contextlib import ExitStack

    from postgres_support import postgres_cluster

    with ExitStack() as stack:
        url = os.environ.get("NEXTEDIT_TEST_POSTGRES_URL") or stack.enter_context(postgres_cluster())
        store = open_store(url).start()
        try:
            before = store.count("events")
            event_id = store.append_sync({"type": "shown", "request_id": "pg-test", "arm": "a"})
            assert store.count("events") == before + 1
            assert any(e.id == event_id for e in store.by_request("pg-test", "events"))
        finally:
            store.close()
