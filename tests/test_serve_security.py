"""The server's trust rules over real HTTP: events only for requests it issued (arm from its own record),
bounded metric labels, secrets scrubbed before anything is stored, admin token never in a URL."""

from __future__ import annotations

import re

import httpx
import orjson
import pytest

from nextedit.serve.config import parse_config
from nextedit.serve.testing import ServerThread
from tests.test_serve_api import (
    ADMIN,
    AUTH,
    KEY,
    SNAPSHOT,
    TEXT,
    predict,
    rows,
    wait_rows,
)

# A file with secrets in it, as an editor sends it: a .env with a rename in progress.
ENV_TEXT = ("PAYMENTS_API_KEY=pk_9f8a7b6c5d4e3f2a1b0c7d\nexport AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9aQpLm3K\n"
            "DATABASE_URL=postgres://svc:ab/cd3fgh@db.internal:5432/app\nAMOUNT=1\nTOTAL=$QTY\n")
ENV_SECRETS = ("pk_9f8a7b6c5d4e3f2a1b0c7d", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9aQpLm3K", "ab/cd3fgh")
ENV_SNAPSHOT = {"path": "deploy/.env", "text": ENV_TEXT, "cursor": ENV_TEXT.index("AMOUNT=1"),
                "history": [{"path": "deploy/.env",
                             "diff": "@@ -4,2 +4,2 @@\n-QTY=1\n+AMOUNT=1\n TOTAL=$QTY\n"}]}


def config(tmp_path, **extra):
    return parse_config({"store": str(tmp_path / "events.db"), "auth": {"api_keys": [KEY], "admin_token": ADMIN},
                         "arms": [{"name": "a", "backend": "propagate", "share": 0.5, "control": True},
                                  {"name": "b", "backend": "propagate", "share": 0.5}], **extra})


@pytest.fixture
def server(tmp_path):
    with ServerThread(config(tmp_path)) as srv, httpx.Client(base_url=srv.url, headers=AUTH, timeout=30) as client:
        yield srv, client, tmp_path / "events.db"


def test_events_for_requests_never_issued_are_refused_and_counted(server):
    _, client, db = server
    for rid in ("made-up", "0" * 32 + "." + "0" * 32, "r1"):
        resp = client.post("/v1/events", json={"type": "accepted", "request_id": rid, "arm": "b"})
        assert resp.status_code == 422
        assert resp.json()["error"].startswith("field request_id:") and "not a request this server issued" in \
            resp.json()["error"]
    real = predict(client, user="u1").json()["request_id"]
    body, sig = real.split(".")
    tampered = body + "." + ("0" if sig[0] != "0" else "1") + sig[1:]
    assert client.post("/v1/events", json={"type": "shown", "request_id": tampered}).status_code == 422
    assert rows(db, "SELECT COUNT(*) FROM events") == [(0,)]
    assert 'nextedit_events_rejected_total{reason="unknown_request"} 4.0' in client.get("/metrics").text


def test_the_arm_of_an_event_is_the_arm_that_served_it(server):
    _, client, db = server
    answer = predict(client, user="u7").json()
    resp = client.post("/v1/events", json={"type": "accepted", "request_id": answer["request_id"],
                                           "arm": "evil-arm", "model_version": "evil@1", "user_id": "someone-else"})
    assert resp.status_code == 200 and resp.json()["arm"] == answer["arm"]
    (payload,) = [orjson.loads(r[0]) for r in rows(db, "SELECT payload FROM events")]
    assert (payload["arm"], payload["model_version"], payload["user_id"]) == (answer["arm"], answer["model_version"],
                                                                              "u7")
    assert rows(db, "SELECT arm FROM events") == [(answer["arm"],)]
    metrics = client.get("/metrics").text
    assert "evil" not in metrics
    assert set(re.findall(r'arm="([^"]+)"', metrics)) <= {"a", "b"}


def test_a_signed_id_is_honoured_by_a_replica_sharing_the_key(tmp_path):
    shared = {"auth": {"api_keys": [KEY], "admin_token": ADMIN, "request_id_key": "shared-secret"}}
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    with ServerThread(config(one, **shared)) as a, ServerThread(config(two, **shared)) as b, \
            ServerThread(config(tmp_path)) as stranger, httpx.Client(headers=AUTH, timeout=30) as client:
        answer = client.post(a.url + "/v1/predict", json={"snapshot": SNAPSHOT, "client_id": "c",
                                                          "user_id": "u3"}).json()
        event = {"type": "shown", "request_id": answer["request_id"], "arm": "not-this"}
        on_b = client.post(b.url + "/v1/events", json=event)  # b never saw the request
        assert on_b.status_code == 200 and on_b.json()["arm"] == answer["arm"]
        assert client.post(stranger.url + "/v1/events", json=event).status_code == 422  # another key


def test_collected_code_is_scrubbed_before_it_is_stored(server):
    _, client, db = server
    answer = predict(client, snapshot=ENV_SNAPSHOT, collectable=True).json()
    assert answer["prediction"] is not None
    rid = answer["request_id"]
    settled = ENV_TEXT.replace("$QTY", "$AMOUNT")
    assert client.post("/v1/events", json={"type": "settled", "request_id": rid, "settled_text": settled,
                                           "collectable": True}).status_code == 200
    (req,) = wait_rows(db, "SELECT payload FROM requests WHERE request_id = ?", rid)
    (tel,) = wait_rows(db, "SELECT payload FROM telemetry WHERE request_id = ?", rid)
    (ev,) = rows(db, "SELECT payload FROM events WHERE request_id = ?", rid)
    for row in (req, tel, ev):
        for secret in ENV_SECRETS:
            assert secret not in row[0]
    trace = orjson.loads(req[0])
    assert trace["secrets_scrubbed"] == 3 and "<SECRET_" in trace["snapshot"]["text"]
    # The stored snapshot is still a valid one and the stored patch applies to it.
    from nextedit import patch as patchlib
    from nextedit.record import Snapshot

    snap = Snapshot.model_validate(trace["snapshot"])
    assert snap.text[snap.cursor:].startswith("AMOUNT=1")
    assert "TOTAL=$QTY" not in patchlib.apply(trace["prediction"]["patch"], snap.text)
    assert "<SECRET_" in orjson.loads(ev[0])["settled_text"]


def test_scrubbing_can_be_turned_off_for_stored_code(tmp_path):
    with ServerThread(config(tmp_path, privacy={"scrub": False})) as srv, \
            httpx.Client(base_url=srv.url, headers=AUTH, timeout=30) as client:
        rid = predict(client, snapshot=ENV_SNAPSHOT, collectable=True).json()["request_id"]
        (req,) = wait_rows(tmp_path / "events.db", "SELECT payload FROM requests WHERE request_id = ?", rid)
        assert ENV_SECRETS[0] in req[0]


def test_admin_token_only_in_a_header_or_the_login_cookie(server):
    srv, _, _ = server
    with httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False) as anon:
        assert anon.get("/dashboard", params={"token": ADMIN}).status_code == 401
        assert anon.get("/admin/config", params={"token": ADMIN}).status_code == 401
        page = anon.get("/login")
        assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
        bad = anon.post("/login", data={"token": "nope"})
        assert bad.status_code == 403 and "set-cookie" not in bad.headers
        good = anon.post("/login", data={"token": ADMIN})
        assert good.status_code == 303 and good.headers["location"] == "/dashboard"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and ADMIN not in cookie
        dash = anon.get("/dashboard")
        assert dash.status_code == 200 and "script-src" not in dash.headers["content-security-policy"]
        # The cookie opens the pages a browser reads, not the state-changing admin API.
        assert anon.post("/admin/reload").status_code == 401
        anon.post("/logout")
        assert anon.get("/dashboard").status_code == 401


def test_text_in_the_settled_event_keeps_the_kept_rate(server):
    _, client, _ = server
    answer = predict(client).json()
    resp = client.post("/v1/events", json={"type": "settled", "request_id": answer["request_id"],
                                           "settled_text": TEXT.replace("amount", "qty")})
    assert resp.json()["kept"]["kept_rate"] == pytest.approx(1.0)


def test_a_settled_event_for_a_request_without_prediction_is_stored(server):
    _, client, _ = server
    answer = predict(client, snapshot={**SNAPSHOT, "history": []}).json()
    assert answer["prediction"] is None
    resp = client.post("/v1/events", json={"type": "settled", "request_id": answer["request_id"], "settled_text": TEXT})
    assert resp.status_code == 200 and resp.json()["kept"] is None  # was a 500 (KeyError)


def test_request_ids_name_their_arm_only_under_the_same_key():
    from nextedit.serve.request_ids import RequestIds

    ids = RequestIds("k1")
    rid = ids.issue("student", prefix="cmpl-")  # the OpenAI-compatible routes' ids are signed too
    assert rid.startswith("cmpl-") and len(rid) <= 128
    assert ids.arm_of(rid, ["control", "student"]) == "student"
    assert ids.arm_of(rid, ["control"]) is None
    assert RequestIds("k2").arm_of(rid, ["control", "student"]) is None
    assert ids.arm_of(rid.replace("cmpl-", "chatcmpl-"), ["student"]) is None
