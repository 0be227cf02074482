"""`nextedit feedback export`: one record per shown prediction from a real SQLite event store, explicit
outcomes, time to decision, settled text, a user-level split, and one-line errors for bad input."""

from __future__ import annotations

import os

import orjson
from typer.testing import CliRunner

from nextedit import patch as patchlib
from nextedit.cli import app
from nextedit.feedback.export import ExportStats, eval_user, export_feedback, user_key
from nextedit.feedback.records import FeedbackError, read_feedback
from nextedit.serve.store import EventStore, SQLiteStore, open_store

runner = CliRunner()

PRE = "import os\n\n"
REGION = "def load(path):\n    return open(path).read()\n"
TEXT = PRE + REGION + "\n"
EDITABLE = [len(PRE), len(PRE) + len(REGION)]
PREDICTED = "def load(path: str) -> str:\n    return open(path).read()\n"
SETTLED = "def load(path: str) -> str:\n    with open(path) as fh:\n        return fh.read()\n"


def request(rid: str, user: str, *, pred: str | None = PREDICTED, at: str = "2026-11-22T10:00:00.000Z",
            **kw) -> dict:
    new = TEXT[:EDITABLE[0]] + pred + TEXT[EDITABLE[1]:] if pred is not None else None
    return {"type": "request", "request_id": rid, "at": at, "user_id": user, "client_id": f"c-{user}",
            "arm": "control", "model_version": "student-v1", "collectable": True, "open_source": True,
            "snapshot": {"path": "io.py", "text": TEXT, "cursor": EDITABLE[0] + 4, "editable": EDITABLE},
            "prediction": None if new is None else {"patch": patchlib.make(TEXT, new, path="io.py"), "cursor": None},
            "reason": None if new else "empty", **kw}


def event(kind: str, rid: str, at: str, **kw) -> dict:
    return {"type": kind, "request_id": rid, "at": at, **kw}


def make_store(path) -> SQLiteStore:
    return fill(SQLiteStore(path))


def fill(store: EventStore) -> EventStore:
    rows = [
        ("requests", request("acc", "alice")),
        ("events", event("shown", "acc", "2026-11-22T10:00:00.100Z")),
        ("events", event("accepted", "acc", "2026-11-22T10:00:01.600Z")),
        ("events", event("settled", "acc", "2026-11-22T10:00:20Z", settled_text=SETTLED, quiet_s=10.0,
                         kept={"kept_rate": 0.8})),
        ("requests", request("part", "alice")),
        ("events", event("shown", "part", "2026-11-22T10:01:00Z")),
        ("events", event("accepted", "part", "2026-11-22T10:01:02Z", reason="partial")),
        ("requests", request("rej", "bob")),
        ("events", event("shown", "rej", "2026-11-22T10:02:00Z")),
        ("events", event("rejected", "rej", "2026-11-22T10:02:03Z", reason="discarded")),
        ("events", event("settled", "rej", "2026-11-22T10:02:30Z", settled_text=REGION, quiet_s=10.0)),
        ("requests", request("ign", "bob")),
        ("events", event("shown", "ign", "2026-11-22T10:03:00Z")),
        ("events", event("rejected", "ign", "2026-11-22T10:03:04Z", reason="replaced")),
        ("requests", request("silent", "carol")),
        ("events", event("shown", "silent", "2026-11-22T10:04:00Z")),
        ("requests", request("hidden", "carol")),  # never shown
        ("requests", request("none", "carol", pred=None)),  # no prediction
        ("requests", request("old", "dave", at="2026-10-01T00:00:00Z")),
        ("events", event("shown", "old", "2026-10-01T00:00:01Z")),
    ]
    for table, row in rows:
        store.append_sync(row, table)
    store.close()
    return store


def test_export_gives_one_record_per_shown_prediction_with_its_outcome(tmp_path):
    store = make_store(tmp_path / "events.db")
    stats = ExportStats()
    records = {r.request_id: r for r in export_feedback(store, since="2026-11-01", stats=stats)}
    assert set(records) == {"acc", "part", "rej", "ign", "silent"}
    assert {k: r.outcome for k, r in records.items()} == {
        "acc": "accepted", "part": "partially_accepted", "rej": "rejected", "ign": "ignored", "silent": "ignored"}
    acc = records["acc"]
    assert acc.prediction.region == PREDICTED and acc.original == REGION
    assert acc.settled.text == SETTLED and acc.kept_rate == 0.8  # accepted, then touched up: still accepted
    assert acc.time_to_decision_s == 1.5 and records["silent"].time_to_decision_s is None
    assert records["rej"].reason == "discarded" and records["rej"].settled.text == REGION
    assert acc.snapshot.text == TEXT and acc.model_version == "student-v1" and acc.at.startswith("2026-11-22T10:00")
    assert acc.user == user_key("alice", None, "acc") and "alice" not in acc.model_dump_json()
    assert (stats.requests, stats.not_shown, stats.no_prediction) == (7, 1, 1)
    assert not list(export_feedback(store, since="2026-11-01", model_versions={"student-v2"}))
    assert len(list(export_feedback(store, since="2026-11-01", model_versions={"student-v1"}))) == 5


def test_user_split_keeps_every_user_on_one_side(tmp_path):
    users = [f"user-{i}" for i in range(200)]
    held = [u for u in users if eval_user(user_key(u, None, "x"), 0.25)]
    assert 25 < len(held) < 75  # about a quarter, by hash
    assert held == [u for u in users if eval_user(user_key(u, None, "y"), 0.25)]  # stable
    store = SQLiteStore(tmp_path / "events.db")
    for i in range(60):
        rid = f"r{i}"
        store.append_sync(request(rid, users[i % 20]), "requests")
        store.append_sync(event("shown", rid, "2026-11-22T10:05:00Z"))
    store.close()
    records = list(export_feedback(store, eval_users=0.3))
    sides = {}
    for r in records:
        sides.setdefault(r.user, set()).add(r.split)
    assert all(len(s) == 1 for s in sides.values())
    assert {"train", "eval"} == {s for v in sides.values() for s in v}


def test_cli_writes_train_and_eval_files_and_reads_back(tmp_path):
    make_store(tmp_path / "events.db")
    out = tmp_path / "fb.jsonl"
    result = runner.invoke(app, ["feedback", "export", "--store", str(tmp_path / "events.db"), "-o", str(out),
                                 "--since", "2026-11-01", "--eval-users", "0.5", "--split-salt", "s1"])
    assert result.exit_code == 0, result.output
    train = list(read_feedback(out))
    held = list(read_feedback(tmp_path / "fb.eval.jsonl"))
    assert len(train) + len(held) == 5
    assert not {r.user for r in train} & {r.user for r in held}
    assert all(r.split == "train" for r in train) and all(r.split == "eval" for r in held)


def test_bad_input_gets_one_line_errors(tmp_path):
    out = str(tmp_path / "fb.jsonl")
    missing = runner.invoke(app, ["feedback", "export", "--store", str(tmp_path / "nope.db"), "-o", out])
    assert missing.exit_code == 2 and "nope.db: no such event store" in missing.output
    make_store(tmp_path / "events.db")
    db = str(tmp_path / "events.db")
    since = runner.invoke(app, ["feedback", "export", "--store", db, "-o", out, "--since", "last week"])
    assert since.exit_code == 2 and "--since 'last week': not an ISO date" in since.output
    frac = runner.invoke(app, ["feedback", "export", "--store", db, "-o", out, "--eval-users", "1.5"])
    assert frac.exit_code == 2 and "--eval-users 1.5" in frac.output
    not_store = tmp_path / "notes.txt"
    not_store.write_text("hello\n" * 100)
    bad = runner.invoke(app, ["feedback", "export", "--store", str(not_store), "-o", out])
    assert bad.exit_code == 2 and "not a SQLite event store" in bad.output
    # A malformed row is skipped with a line naming the table, row and field; the rest is exported.
    store = SQLiteStore(tmp_path / "events.db")
    store.append_sync({"type": "request", "request_id": "broken", "snapshot": {"path": "x.py"}}, "requests")
    store.close()
    partial = runner.invoke(app, ["feedback", "export", "--store", db, "-o", out])
    assert partial.exit_code == 1
    assert ":requests:" in partial.output and "field snapshot.text: Field required" in partial.output
    assert len(list(read_feedback(out))) == 6


def test_read_feedback_names_file_line_and_field(tmp_path):
    path = tmp_path / "fb.jsonl"
    make_store(tmp_path / "events.db")
    good = next(iter(export_feedback(SQLiteStore(tmp_path / "events.db"))))
    row = good.model_dump(mode="json")
    row["outcome"] = "loved"
    path.write_bytes(orjson.dumps(good.model_dump(mode="json")) + b"\n" + orjson.dumps(row) + b"\n")
    try:
        list(read_feedback(path))
    except FeedbackError as exc:
        assert str(exc).startswith(f"{path}:2: field outcome: Input should be")
    else:
        raise AssertionError("a bad outcome was accepted")


def test_export_reads_a_postgresql_store():
    """Against $NEXTEDIT_TEST_POSTGRES_URL when set, else a throwaway local cluster (tests/postgres_support.py)."""
    from contextlib import ExitStack

    from postgres_support import postgres_cluster

    with ExitStack() as stack:
        url = os.environ.get("NEXTEDIT_TEST_POSTGRES_URL") or stack.enter_context(postgres_cluster())
        fill(open_store(url))
        records = {r.request_id: r.outcome for r in export_feedback(open_store(url), since="2026-11-01")}
        assert records == {"acc": "accepted", "part": "partially_accepted", "rej": "rejected", "ign": "ignored",
                           "silent": "ignored"}


def test_privacy_rules_hold_from_a_real_server_to_the_export(tmp_path):
    """Consent: a request not marked collectable never reaches the export. Scrubbing: secrets in the snapshot and
    the settled text are replaced before they are stored, so no record carries them. Users are hashes."""
    import httpx

    from nextedit.serve.config import parse_config
    from nextedit.serve.testing import ServerThread

    key = "pk_9f8a7b6c5d4e3f2a1b0c7d"
    text = f"PAYMENTS_API_KEY={key}\nAMOUNT=1\nTOTAL=$QTY\n"
    snap = {"path": "deploy/.env", "text": text, "cursor": text.index("AMOUNT=1"),
            "history": [{"path": "deploy/.env", "diff": "@@ -2,2 +2,2 @@\n-QTY=1\n+AMOUNT=1\n TOTAL=$QTY\n"}]}
    db = tmp_path / "events.db"
    config = parse_config({"store": str(db), "auth": {"api_keys": ["k"]},
                           "arms": [{"name": "live", "backend": "propagate", "share": 1.0}]})
    with ServerThread(config) as server, httpx.Client(base_url=server.url, timeout=30,
                                                      headers={"Authorization": "Bearer k"}) as client:
        for user, consent in (("alice@example.com", True), ("bob@example.com", False)):
            answer = client.post("/v1/predict", json={"snapshot": snap, "user_id": user, "client_id": f"c-{user}",
                                                      "collectable": consent, "open_source": True}).json()
            assert answer["prediction"] is not None
            for ev in ({"type": "shown"}, {"type": "accepted"},
                       {"type": "settled", "settled_text": text.replace("$QTY", "$AMOUNT"), "collectable": consent}):
                resp = client.post("/v1/events", json={"request_id": answer["request_id"], **ev})
                assert resp.status_code == 200, resp.text
    (rec,) = export_feedback(open_store(db))  # bob did not consent: nothing of his is exported
    dumped = rec.model_dump_json()
    assert rec.outcome == "accepted" and rec.user == user_key("alice@example.com", None, "")
    assert key not in dumped and "alice" not in dumped and "bob" not in dumped
    assert "<SECRET_" in rec.snapshot.text and "<SECRET_" in rec.settled.text
