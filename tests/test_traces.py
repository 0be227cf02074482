"""Trace import: request + settled pairs -> examples, consent filters, edit replay, the SQLite event store."""

from __future__ import annotations

import sqlite3

import orjson
import pytest
from typer.testing import CliRunner

from nextedit import patch as patchlib
from nextedit.cli import app
from nextedit.jsonl import read_dicts, read_examples
from nextedit.settle.traces import ImportStats, import_traces, iter_trace_events

runner = CliRunner()

PRE = "import os\n\n"
REGION = "def load(path):\n    return open(path).read()\n"
POST = "\n\ndef save(path, data):\n    pass\n"
TEXT = PRE + REGION + POST
EDITABLE = [len(PRE), len(PRE) + len(REGION)]
SETTLED = "def load(path):\n    with open(path) as fh:\n        return fh.read()\n"
PREDICTED = "def load(path: str) -> str:\n    return open(path).read()\n"


def snapshot() -> dict:
    return {"path": "io.py", "text": TEXT, "cursor": len(PRE) + 4, "editable": EDITABLE}


def prediction(region: str) -> dict:
    new = TEXT[:EDITABLE[0]] + region + TEXT[EDITABLE[1]:]
    return {"patch": patchlib.make(TEXT, new, path="io.py"), "cursor": None}


def request(rid: str, *, at: float = 100.0, pred: str | None = PREDICTED, **kw) -> dict:
    return {"type": "request", "request_id": rid, "snapshot": snapshot(), "model_version": "m-7", "arm": "a",
            "client_id": "c1", "user_id": "u1", "collectable": True, "open_source": True, "at": at,
            "prediction": prediction(pred) if pred is not None else None, **kw}


def write(path, events) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def test_request_and_settled_pair_becomes_an_example(tmp_path):
    src = write(tmp_path / "t.jsonl", [
        request("r1"),
        {"type": "shown", "request_id": "r1", "at": 100.2},
        {"type": "rejected", "request_id": "r1", "reason": "discarded", "at": 101},
        {"type": "settled", "request_id": "r1", "text": SETTLED, "quiet_s": 12.5, "at": "2026-11-22T00:00:00Z"},
        request("r2"),  # never settled
    ])
    stats = ImportStats()
    [ex] = list(import_traces([src], stats=stats))
    assert ex.id == "trace-r1" and ex.source.kind == "trace"
    assert ex.settled.text == SETTLED and ex.settled.quiet_s == 12.5
    # expected = the settled diff; rejected = the model's own output.
    assert patchlib.to_region(ex.expected[0], TEXT, tuple(EDITABLE))[1] == SETTLED
    assert patchlib.to_region(ex.rejected, TEXT, tuple(EDITABLE))[1] == PREDICTED
    assert ex.trace["shown"] and not ex.trace["accepted"] and ex.trace["rejected_reason"] == "discarded"
    assert ex.trace["model_version"] == "m-7" and ex.trace["settled_by"] == "event"
    assert (stats.requests, stats.examples, stats.no_settled) == (2, 1, 1)


def test_accepted_prediction_equal_to_settled_is_not_rejected_and_serve_field_names_work(tmp_path):
    src = write(tmp_path / "t.jsonl", [
        request("r1", pred=SETTLED),
        {"type": "accepted", "request_id": "r1"},
        {"type": "settled", "request_id": "r1", "settled_text": SETTLED, "quiet_s": None},
        request("r2", pred=None),
        {"type": "settled", "request_id": "r2", "text": REGION},  # the user changed nothing
    ])
    a, b = list(import_traces([src]))
    assert a.rejected is None and a.trace["accepted"] and a.settled.quiet_s == 10.0
    assert b.rejected is None and b.expected == [] and b.settled.text == REGION


def test_consent_and_open_source_filters(tmp_path):
    events = [request("ok"), request("private", collectable=False), request("closed", open_source=False)]
    events += [{"type": "settled", "request_id": r, "text": SETTLED} for r in ("ok", "private", "closed")]
    src = write(tmp_path / "t.jsonl", events)
    assert [e.id for e in import_traces([src])] == ["trace-ok", "trace-private", "trace-closed"]
    stats = ImportStats()
    assert [e.id for e in import_traces([src], require_consent=True, require_open_source=True, stats=stats)] == [
        "trace-ok"]
    assert (stats.not_consented, stats.not_open_source) == (1, 1)


def test_settled_region_replayed_from_edit_events(tmp_path):
    start = EDITABLE[0]
    events = [
        request("r1", at=100.0, document_offset=0),
        # The user types inside the region at 101 s, then edits above it at 104 s (region moves).
        {"type": "edit", "client_id": "c1", "path": "io.py", "start": start + 13, "end": start + 13, "text": ": str",
         "at": 101.0},
        {"type": "edit", "client_id": "c1", "path": "io.py", "start": 0, "end": 0, "text": "import sys\n", "at": 104.0},
        # Another client's edit of a file with the same name does not touch it.
        {"type": "edit", "client_id": "c2", "path": "io.py", "start": start, "end": start + 3, "text": "x", "at": 109.0},
        # A second request that never goes quiet within the TTL: edited every 5 s.
        request("r2", at=200.0),
        *[{"type": "edit", "client_id": "c1", "path": "io.py", "start": start + 20, "end": start + 20, "text": "x",
           "at": 200.0 + 5 * k} for k in range(1, 80)],
    ]
    src = write(tmp_path / "t.jsonl", events)
    stats = ImportStats()
    [ex] = list(import_traces([src], stats=stats))
    assert ex.id == "trace-r1" and ex.trace["settled_by"] == "replay"
    assert ex.settled.text == REGION.replace("load(path)", "load(path: str)") and stats.replayed == 1
    assert list(import_traces([src], replay=False)) == []


def test_sqlite_event_store_with_payload_column(tmp_path):
    db = tmp_path / "events.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, type TEXT, request_id TEXT, at TEXT, payload TEXT)")
    rows = [("request", "r1", None, orjson.dumps({k: v for k, v in request("r1").items() if k != "type"})),
            ("settled", "r1", "2026-11-22T01:00:00Z", orjson.dumps({"settled_text": SETTLED, "quiet_s": 10})),
            ("rejected", "r1", None, orjson.dumps({"reason": "replaced"})),
            ("settled", "r9", None, b"{not json")]
    con.executemany("INSERT INTO events (type, request_id, at, payload) VALUES (?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    assert [type(d) for _f, _l, d in iter_trace_events(db)] == [dict, dict, dict, bytes]
    errors: list[str] = []
    [ex] = list(import_traces([db], on_error=lambda f, line, reason, raw: errors.append(reason)))
    assert ex.settled.text == SETTLED and ex.trace["rejected_reason"] == "replaced"
    assert errors == [f"{db}:events:4: malformed JSON payload " + errors[0].split("payload ", 1)[1]]


def test_import_command_quarantines_bad_events_and_keeps_the_good(tmp_path):
    src = write(tmp_path / "t.jsonl", [
        request("r1"),
        {"type": "settled", "request_id": "r1", "text": SETTLED},
        {"type": "settled", "request_id": "r2"},  # no text
        {"type": "nonsense"},
        {"type": "request", "request_id": "r3", "snapshot": {"path": "a", "text": "x", "cursor": 9}},
    ])
    out = tmp_path / "ex.jsonl"
    result = runner.invoke(app, ["import", "traces", src, "-o", str(out), "--require-consent"])
    assert result.exit_code == 1
    assert [e.id for e in read_examples(out)] == ["trace-r1"]
    reasons = [row["reason"] for _, row in read_dicts(tmp_path / "ex.failed.jsonl")]
    assert reasons[0] == f"{src}:3: field text: Field required"
    assert reasons[1].startswith(f"{src}:4: field type: expected one of")
    assert reasons[2].startswith(f"{src}:5: field snapshot: cursor 9 is past the end")
    assert "imported 1 examples" in result.output


def test_imported_traces_feed_the_settle_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    src = write(tmp_path / "t.jsonl", [request("r1"), {"type": "settled", "request_id": "r1", "text": SETTLED}])
    ex_path = tmp_path / "ex.jsonl"
    assert runner.invoke(app, ["import", "traces", src, "-o", str(ex_path)]).exit_code == 0
    near = SETTLED.replace("fh.read()", "fh.read( )")
    cands = tmp_path / "c.json"
    cands.write_bytes(orjson.dumps({"trace-r1": [{"region": PREDICTED}, {"region": near}]}))
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(app, ["settle", str(ex_path), "-p", f"scripted:{cands}", "-n", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    [kept] = list(read_examples(out))
    assert patchlib.to_region(kept.expected[0], TEXT, tuple(EDITABLE))[1] == near
    assert patchlib.to_region(kept.rejected, TEXT, tuple(EDITABLE))[1] == PREDICTED
    assert kept.trace["request_id"] == "r1"


@pytest.mark.parametrize("at", ["2026-11-22T00:00:00", "2026-11-22T00:00:00+00:00", 1795305600])
def test_times_are_epoch_seconds(tmp_path, at):
    src = write(tmp_path / "t.jsonl", [request("r1", at=at), {"type": "settled", "request_id": "r1", "text": SETTLED}])
    [ex] = list(import_traces([src]))
    assert ex.trace["at"] == 1795305600.0 and ex.source.time == "2026-11-22T00:00:00Z"


def test_the_documented_example_log_imports(tmp_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "traces.md").read_text()
    block = doc.split("```json\n", 1)[1].split("```", 1)[0]
    src = tmp_path / "doc.jsonl"
    src.write_text(block)
    [ex] = list(import_traces([src]))
    assert ex.settled.text == "def load(path):\n    with open(path) as fh:\n        return fh.read()\n"
    assert ex.trace["rejected_reason"] == "discarded" and ex.rejected is not None
    [replayed] = list(import_traces([_without_settled(src, tmp_path)]))
    assert replayed.settled.text == ex.settled.text and replayed.trace["settled_by"] == "replay"


def _without_settled(src, tmp_path):
    out = tmp_path / "no-settled.jsonl"
    lines = [line for line in src.read_text().splitlines() if '"settled"' not in line]
    # The log goes on after the region went quiet (another request's event at 10:00:20).
    lines.append('{"type": "shown", "request_id": "r-82", "at": "2026-11-22T10:00:20Z"}')
    out.write_text("".join(line + "\n" for line in lines))
    return out


def test_events_without_times_need_them_only_for_replay(tmp_path):
    req = request("r1")
    del req["at"]
    src = write(tmp_path / "t.jsonl", [
        req, {"type": "settled", "request_id": "r1", "text": SETTLED},
        {"type": "edit", "client_id": "c1", "path": "io.py", "start": 0, "end": 0, "text": "#"},  # no time
    ])
    errors: list[str] = []
    [ex] = list(import_traces([src], on_error=lambda f, line, reason, raw: errors.append(reason)))
    assert ex.settled.text == SETTLED and ex.trace["at"] is None
    assert errors == [f"{src}:3: field at: needed to replay edits"]
    assert list(import_traces([src], replay=False, on_error=lambda *a: errors.append("x"))) and errors[1:] == []


def test_accepted_prediction_touched_up_before_it_settled_is_not_a_negative(tmp_path):
    src = write(tmp_path / "t.jsonl", [
        request("r1"),  # predicts PREDICTED; the user accepts it, then rewrites the body
        {"type": "shown", "request_id": "r1", "at": 100.1},
        {"type": "accepted", "request_id": "r1", "at": 100.5},
        {"type": "settled", "request_id": "r1", "text": SETTLED},
        request("r2"),  # the same prediction, rejected: still a negative
        {"type": "rejected", "request_id": "r2", "reason": "rejected"},
        {"type": "settled", "request_id": "r2", "text": SETTLED},
    ])
    a, b = list(import_traces([src]))
    assert a.rejected is None and a.trace["accepted"] and a.trace["touched_up"]
    assert patchlib.to_region(a.expected[0], TEXT, tuple(EDITABLE))[1] == SETTLED
    assert b.rejected is not None and not b.trace["touched_up"]
