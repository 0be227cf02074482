"""nextedit serve over real HTTP on 127.0.0.1: predict, cancellation, deadline, events, auth, bad input."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from nextedit import patch as patchlib
from nextedit.metrics.kept import kept_rate
from nextedit.serve.config import parse_config
from nextedit.serve.edits import apply_edits
from nextedit.serve.testing import (
    ServerThread,
    SleepPredictor,
    register_test_predictors,
)

KEY, ADMIN = "test-key", "test-admin"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = "def total(items, qty):\n    return sum(amount for amount in items) * amount\n\nprint(amount)\n"
SNAPSHOT = {
    "path": "shop/cart.py",
    "text": TEXT,
    "cursor": 10,
    "editable": [0, len(TEXT)],
    "history": [{"path": "shop/cart.py", "old_path": "shop/cart.py",
                 "diff": "@@ -1,2 +1,2 @@\n-def total(items, amount):\n+def total(items, qty):\n"
                         "     return sum(amount for amount in items) * amount\n"}],
}


def make_config(tmp_path: Path, arms: list[dict], **extra: object):
    register_test_predictors()
    return parse_config({"store": str(tmp_path / "events.db"), "deadline_ms": 300,
                         "auth": {"api_keys": [KEY], "admin_token": ADMIN}, "arms": arms, **extra})


def predict(client: httpx.Client, *, user: str = "u1", client_id: str = "c1", snapshot: dict | None = None,
            **extra: object) -> httpx.Response:
    body = {"snapshot": snapshot or SNAPSHOT, "client_id": client_id, "user_id": user, **extra}
    return client.post("/v1/predict", json=body)


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_rows(db: Path, sql: str, *params: object, n: int = 1) -> list[tuple]:
    """Rows of a query once there are at least n (prediction logs are written after the response)."""
    deadline = time.monotonic() + 10
    while True:
        found = rows(db, sql, *params)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.fixture
def propagate_server(tmp_path):
    config = make_config(tmp_path, [{"name": "prop", "backend": "propagate", "share": 1.0}])
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        yield server, client, tmp_path / "events.db"


def test_predict_round_trip_returns_edit_patch_and_offsets(propagate_server):
    _, client, _ = propagate_server
    resp = predict(client)
    assert resp.status_code == 200
    body = resp.json()
    assert body["reason"] is None and body["arm"] == "prop"
    assert body["model_version"].startswith("propagate@v")
    assert len(body["request_id"]) >= 16
    pred = body["prediction"]
    expected_text = TEXT.replace("amount", "qty")
    # The char-offset edits and the unified diff both turn the snapshot into the propagated text.
    assert apply_edits(TEXT, pred["edits"]) == expected_text
    assert patchlib.apply(pred["patch"], TEXT) == expected_text
    assert all(e["end"] - e["start"] == len("amount") and e["text"] == "qty" for e in pred["edits"])
    assert set(body["timing"]) >= {"total_ms", "backend_ms", "queue_ms", "parse_ms"}
    assert body["timing"]["total_ms"] >= body["timing"]["backend_ms"]


def test_no_history_answers_empty_with_reason(propagate_server):
    _, client, _ = propagate_server
    body = predict(client, snapshot={**SNAPSHOT, "history": []}).json()
    assert body["prediction"] is None and body["reason"] == "empty"
    assert body["arm"] == "prop" and body["request_id"]
    assert body["locations"] == []


def test_a_jump_arm_answers_its_locations(tmp_path):
    config = make_config(tmp_path, [{"name": "jumps", "backend": "jump", "share": 1.0}])
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        # The editable region is the first line only: the remaining `amount`s lie outside it.
        body = predict(client, snapshot={**SNAPSHOT, "editable": [0, TEXT.index("\n") + 1]}).json()
        assert body["prediction"] is None and body["reason"] == "empty"  # no edit here, but a place to go
        locations = body["locations"]
        assert [(loc["path"], loc["start_line"], loc["end_line"]) for loc in locations] == [
            ("shop/cart.py", 1, 2), ("shop/cart.py", 3, 4)]
        assert locations[0]["reason"] == "rename amount -> qty" and locations[0]["score"] == 0.0
        lines = TEXT.splitlines(keepends=True)
        assert patchlib.apply(locations[1]["patch"], TEXT) == "".join(lines[:3]) + "print(qty)\n"
        rows_ = wait_rows(tmp_path / "events.db", "SELECT payload FROM telemetry WHERE type = 'predicted'")
        assert orjson.loads(rows_[0][0])["locations"] == 2
        # An event about the jump is marked as such in the store.
        ack = client.post("/v1/events", json={"type": "shown", "request_id": body["request_id"], "jump": True})
        assert ack.status_code == 200, ack.text
        stored = orjson.loads(rows(tmp_path / "events.db", "SELECT payload FROM events WHERE id = ?",
                                   ack.json()["event_id"])[0][0])
        assert stored["jump"] is True


def test_events_are_durable_before_ack_and_kept_rate_is_computed(propagate_server):
    _, client, db = propagate_server
    first = predict(client, user="alice").json()
    rid = first["request_id"]
    for kind in ("shown", "accepted"):
        resp = client.post("/v1/events", json={"type": kind, "request_id": rid})
        assert resp.status_code == 200, resp.text
        ack = resp.json()
        # Acknowledged means committed: a separate connection sees the row right away.
        assert rows(db, "SELECT type, arm, model_version, user_id FROM events WHERE id = ?", ack["event_id"]) == [
            (kind, "prop", first["model_version"], "alice")]
    settled = TEXT.replace("amount", "qty").replace("print(qty)", "print(qty, items)")
    resp = client.post("/v1/events", json={"type": "settled", "request_id": rid, "settled_text": settled,
                                           "quiet_s": 10.0, "syntax_errors_before": 0, "syntax_errors_after": 0})
    kept = resp.json()["kept"]
    want = kept_rate(TEXT, TEXT.replace("amount", "qty"), settled)
    assert kept["kept_rate"] == pytest.approx(want.kept_rate, abs=1e-6)
    assert kept["candidate_bytes"] == want.candidate_new_chars + want.candidate_deleted_chars
    # Not collectable: the settled event goes to telemetry without its text, no code is stored anywhere.
    assert resp.json()["table"] == "telemetry"
    payload = orjson.loads(rows(db, "SELECT payload FROM telemetry WHERE id = ?", resp.json()["event_id"])[0][0])
    assert payload["kept"]["kept_rate"] == kept["kept_rate"]
    assert "settled_text" not in payload
    assert rows(db, "SELECT COUNT(*) FROM requests") == [(0,)]
    all_payloads = " ".join(r[0] for t in ("requests", "events", "telemetry")
                            for r in rows(db, f"SELECT payload FROM {t}"))
    assert "sum(" not in all_payloads and "qty" not in all_payloads


def test_collectable_requests_store_code_for_training(propagate_server):
    _, client, db = propagate_server
    rid = predict(client, collectable=True).json()["request_id"]
    settled = TEXT.replace("amount", "qty")
    wait_rows(db, "SELECT id FROM requests WHERE request_id = ?", rid)
    client.post("/v1/events", json={"type": "settled", "request_id": rid, "settled_text": settled,
                                    "collectable": True})
    (pred,) = [orjson.loads(r[0]) for r in rows(db, "SELECT payload FROM telemetry WHERE request_id = ?", rid)]
    assert pred["type"] == "predicted" and pred["snapshot"]["text"] == TEXT and pred["region_after"] == settled
    (req,) = [orjson.loads(r[0]) for r in rows(db, "SELECT payload FROM requests WHERE request_id = ?", rid)]
    assert req["type"] == "request" and req["snapshot"]["text"] == TEXT
    assert patchlib.apply(req["prediction"]["patch"], TEXT) == settled
    (sett,) = [orjson.loads(r[0]) for r in rows(db, "SELECT payload FROM events WHERE request_id = ? AND "
                                                       "type = 'settled'", rid)]
    assert sett["settled_text"] == settled and sett["kept"]["kept_rate"] == 1.0


def test_auth_failures(propagate_server):
    server, _, _ = propagate_server
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        body = {"snapshot": SNAPSHOT, "client_id": "c", "user_id": "u"}
        missing = anon.post("/v1/predict", json=body)
        assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]
        wrong = anon.post("/v1/predict", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid API key"
        assert anon.post("/v1/events", json={"type": "shown", "request_id": "x"}).status_code == 401
        # The API key is not the admin token, and the admin token is not an API key.
        assert anon.get("/dashboard", headers=AUTH).status_code == 403
        assert anon.post("/admin/reload", headers=AUTH).status_code == 403
        assert anon.get("/dashboard").status_code == 401
        assert anon.post("/v1/predict", json=body, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 401
        assert anon.get("/dashboard", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
        assert anon.get("/dashboard", params={"token": ADMIN}).status_code == 401  # never a token in a URL


def test_malformed_requests_get_4xx_with_a_message(propagate_server):
    _, client, db = propagate_server
    bad_json = client.post("/v1/predict", content=b'{"snapshot": ', headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "malformed JSON" in bad_json.json()["error"]
    no_user = client.post("/v1/predict", json={"snapshot": SNAPSHOT, "client_id": "c"})
    assert no_user.status_code == 422 and no_user.json()["error"].startswith("field user_id:")
    bad_cursor = predict(client, snapshot={**SNAPSHOT, "cursor": 10_000})
    assert bad_cursor.status_code == 422 and "snapshot" in bad_cursor.json()["error"]
    assert "past the end" in bad_cursor.json()["error"]
    not_object = client.post("/v1/predict", json=[1, 2])
    assert not_object.status_code == 422 and "JSON object" in not_object.json()["error"]
    bad_type = client.post("/v1/events", json={"type": "clicked", "request_id": "r"})
    assert bad_type.status_code == 422 and bad_type.json()["error"].startswith("field type:")
    no_text = client.post("/v1/events", json={"type": "settled", "request_id": "r"})
    assert no_text.status_code == 422 and "settled_text" in no_text.json()["error"]
    huge = predict(client, snapshot={**SNAPSHOT, "text": "x" * 2_000_000, "cursor": 0, "editable": None})
    assert huge.status_code == 413 and "limit" in huge.json()["error"]
    assert rows(db, "SELECT COUNT(*) FROM events") == [(0,)]


def test_metrics_count_requests_by_arm_and_outcome(propagate_server):
    _, client, _ = propagate_server
    for _ in range(3):
        predict(client)
    predict(client, snapshot={**SNAPSHOT, "history": []})
    text = client.get("/metrics").text
    assert 'nextedit_requests_total{arm="prop",outcome="ok"} 3.0' in text
    assert 'nextedit_requests_total{arm="prop",outcome="empty"} 1.0' in text
    assert 'nextedit_request_latency_seconds_bucket{arm="prop",le="0.3"} 4.0' in text or \
        'nextedit_request_latency_seconds_count{arm="prop"} 4.0' in text
    for edge in ("0.05", "0.1", "0.2", "0.3", "0.5"):
        assert f'le="{edge}"' in text


def test_superseded_request_is_cancelled_and_generation_stops(tmp_path):
    config = make_config(tmp_path, [{"name": "slow", "backend": "sleep:1500", "share": 1.0}], deadline_ms=5000)
    SleepPredictor.calls.clear()
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        results: dict[str, dict] = {}

        def call(name: str, client_id: str) -> None:
            results[name] = predict(client, client_id=client_id).json()

        first = threading.Thread(target=call, args=("first", "editor-1"))
        other = threading.Thread(target=call, args=("other", "editor-2"))
        first.start()
        other.start()
        while len(SleepPredictor.calls) < 2:
            time.sleep(0.01)
        call("second", "editor-1")  # same client and file: supersedes "first"
        first.join()
        other.join()
    assert results["first"]["reason"] == "cancelled" and results["first"]["prediction"] is None
    assert results["second"]["reason"] is None and results["second"]["prediction"] is not None
    assert results["other"]["reason"] is None  # another client is not affected
    by_id = {c["id"]: c for c in SleepPredictor.calls}
    stopped = by_id[results["first"]["request_id"]]
    assert stopped["cancelled"] and not stopped["finished"]
    assert by_id[results["second"]["request_id"]]["finished"]
    assert 'nextedit_cancellations_total{arm="slow"} 1.0' in server.state.metrics.render().decode()


def test_deadline_answers_timeout_and_stops_the_backend(tmp_path):
    config = make_config(tmp_path, [{"name": "slow", "backend": "sleep:3000", "share": 1.0}], deadline_ms=150)
    SleepPredictor.calls.clear()
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        body = predict(client).json()
        assert body["reason"] == "timeout" and body["prediction"] is None
        assert "150" in body["detail"]
        assert not SleepPredictor.calls[0]["finished"]  # answered before the backend could finish
        deadline = time.monotonic() + 5
        while not SleepPredictor.calls[0]["cancelled"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert SleepPredictor.calls[0]["cancelled"] and not SleepPredictor.calls[0]["finished"]
        logged = wait_rows(tmp_path / "events.db", "SELECT json_extract(payload, '$.outcome') FROM telemetry")
        assert logged == [("timeout",)]


def test_unparsable_history_makes_propagate_answer_empty(tmp_path):
    config = make_config(tmp_path, [{"name": "bad", "backend": "propagate", "share": 1.0}])
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        # A history diff that does not parse makes propagate answer empty, never a 5xx.
        snap = {**SNAPSHOT, "history": [{"path": "shop/cart.py", "diff": "@@ garbage"}]}
        resp = predict(client, snapshot=snap)
        assert resp.status_code == 200 and resp.json()["reason"] == "empty"
        assert server.state.metrics.requests.labels("bad", "empty")._value.get() == 1


def test_import_traces_reads_the_store_back_into_examples(propagate_server, tmp_path):
    from typer.testing import CliRunner

    from nextedit.cli import app
    from nextedit.jsonl import read_examples

    _, client, db = propagate_server
    settled = TEXT.replace("amount", "qty").replace("print(qty)", "print(qty, items)")
    ids = []
    for collectable in (True, False, True):
        rid = predict(client, collectable=collectable, open_source=True).json()["request_id"]
        ids.append(rid)
        for kind in ("shown", "accepted"):
            client.post("/v1/events", json={"type": kind, "request_id": rid})
        client.post("/v1/events", json={"type": "settled", "request_id": rid, "settled_text": settled,
                                        "collectable": collectable, "quiet_s": 10})
    wait_rows(db, "SELECT id FROM requests", n=2)
    out = tmp_path / "traces.jsonl"
    result = CliRunner().invoke(app, ["import", "traces", str(db), "-o", str(out), "--require-consent"])
    assert result.exit_code == 0, result.output
    examples = list(read_examples(out))
    assert sorted(e.id for e in examples) == sorted(f"trace-{r}" for r in (ids[0], ids[2]))
    for ex in examples:
        assert ex.settled.text == settled and ex.snapshot.text == TEXT
        assert patchlib.apply(ex.expected[0], TEXT) == settled
        assert ex.trace["accepted"] and ex.trace["arm"] == "prop"  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind, reason, detail", [
    ("error", "parse_failed", "no editable region markers"),
    ("garbage", "parse_failed", "does not parse"),
    ("outside", "filtered", "outside the editable region"),
    ("raise", "error", "canned failure"),
])
def test_every_failure_is_an_answer_with_a_reason(tmp_path, kind, reason, detail):
    config = make_config(tmp_path, [{"name": "canned", "backend": f"canned:{kind}", "share": 1.0}])
    line0 = TEXT.index("\n") + 1
    snap = {**SNAPSHOT, "editable": [line0, len(TEXT)], "cursor": line0}
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        resp = predict(client, snapshot=snap)
        assert resp.status_code == 200
        body = resp.json()
        assert body["prediction"] is None and body["reason"] == reason and detail in body["detail"]
        assert f'nextedit_requests_total{{arm="canned",outcome="{reason}"}} 1.0' in client.get("/metrics").text
    (logged,) = wait_rows(tmp_path / "events.db", "SELECT payload FROM telemetry")
    assert orjson.loads(logged[0])["outcome"] == reason
    assert orjson.loads(logged[0])["detail"] is None  # may quote model output: not stored without consent
