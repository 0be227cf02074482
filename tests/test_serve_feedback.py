"""/v1/events on a real server (uvicorn in a thread): partial accepts and `skipped` counts are stored,
counted and shown on the dashboard; malformed ones are refused naming the field."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("uvicorn", reason="nextedit serve needs the serve extra")

from nextedit.serve.config import ServeConfig
from nextedit.serve.testing import ServerThread

KEY = {"Authorization": "Bearer k"}
ADMIN = {"Authorization": "Bearer admin"}
TEXT = "def area(h):\n    return width * h * width\n"


def _config(tmp_path) -> ServeConfig:
    return ServeConfig.model_validate({
        "store": str(tmp_path / "events.db"), "auth": {"api_keys": ["k"], "admin_token": "admin"},
        "arms": [{"name": "prop", "backend": "propagate", "share": 1.0}]})


def test_partial_accepts_and_skipped_counts_reach_the_dashboard(tmp_path) -> None:
    with ServerThread(_config(tmp_path)) as server:
        old = TEXT.replace("width *", "w *", 1)
        history = [{"path": "a.py", "diff": "--- a/a.py\n+++ b/a.py\n@@ -2 +2 @@\n-    return width * h * width\n"
                                            "+    return w * h * width\n"}]
        answer = httpx.post(server.url + "/v1/predict", headers=KEY, json={
            "snapshot": {"path": "a.py", "text": old, "cursor": 18, "history": history},
            "client_id": "c1", "user_id": "u1"}).json()
        assert answer["prediction"] is not None
        rid = answer["request_id"]
        for body in ({"type": "shown", "request_id": rid, "reason": "inline_completion"},
                     {"type": "accepted", "request_id": rid, "reason": "partial_word", "partial": "word"},
                     {"type": "skipped", "client_id": "c1", "user_id": "u1", "arm": "prop",
                      "counts": {"excluded": 3, "backoff": 2}},
                     {"type": "skipped", "client_id": "c1", "user_id": "u1", "counts": {"excluded": 1}}):
            reply = httpx.post(server.url + "/v1/events", headers=KEY, json=body)
            assert reply.status_code == 200 and reply.json()["ok"], reply.text
        stored = [e.payload for e in server.state.store.events()]
        accepted = next(p for p in stored if p["type"] == "accepted")
        assert accepted["partial"] == "word" and accepted["arm"] == "prop"
        skipped = [p for p in stored if p["type"] == "skipped"]
        assert [p["counts"] for p in skipped] == [{"excluded": 3, "backoff": 2}, {"excluded": 1}]
        assert all("request_id" not in p and "settled_text" not in p for p in skipped)
        page = httpx.get(server.url + "/dashboard", headers=ADMIN).text
        assert '<tr data-skipped="excluded"><td>editor</td><td>excluded</td><td data-value="4">' in page
        assert 'data-partial="prop:word" data-value="1"' in page
        metrics = httpx.get(server.url + "/metrics").text
        assert 'nextedit_skipped_attempts_total{reason="excluded"} 4.0' in metrics


@pytest.mark.parametrize(("body", "message"), [
    ({"type": "skipped"}, "field counts: required"),
    ({"type": "skipped", "counts": {"no such reason!": 1}}, "is not a reason name"),
    ({"type": "skipped", "counts": {"excluded": -1}}, "outside 0..1000000"),
    ({"type": "accepted"}, "field request_id: required"),
    ({"type": "accepted", "request_id": "x", "partial": "paragraph"}, "field partial"),
])
def test_malformed_feedback_is_refused_naming_the_field(tmp_path, body: dict, message: str) -> None:
    with ServerThread(_config(tmp_path)) as server:
        reply = httpx.post(server.url + "/v1/events", headers=KEY, json=body)
        assert reply.status_code == 422 and message in reply.json()["error"], reply.text


def test_a_prediction_accepted_by_one_word_only_keeps_part_of_it(tmp_path) -> None:
    """Partial accept counts in kept rate: the settled text holds only the accepted word's share."""
    text = "def area(h):\n    return width * h * width * width\n"
    old = text.replace("width *", "w *", 1)
    history = [{"path": "a.py", "diff": "--- a/a.py\n+++ b/a.py\n@@ -2 +2 @@\n-    return width * h * width * width\n"
                                        "+    return w * h * width * width\n"}]
    with ServerThread(_config(tmp_path)) as server:
        answer = httpx.post(server.url + "/v1/predict", headers=KEY, json={
            "snapshot": {"path": "a.py", "text": old, "cursor": 18, "history": history},
            "client_id": "c1", "user_id": "u1"}).json()
        assert len(answer["prediction"]["edits"]) == 2  # both remaining `width`s become `w`
        rid = answer["request_id"]
        for body in ({"type": "shown", "request_id": rid, "reason": "inline_completion"},
                     {"type": "accepted", "request_id": rid, "reason": "partial_word", "partial": "word"},
                     {"type": "settled", "request_id": rid, "settled_text": old.replace("width", "w", 1)}):
            reply = httpx.post(server.url + "/v1/events", headers=KEY, json=body)
            assert reply.status_code == 200, reply.text
        settled = next(e.payload for e in server.state.store.events() if e.payload["type"] == "settled")
        assert 0.0 < settled["kept"]["kept_rate"] < 1.0
        page = httpx.get(server.url + "/dashboard", headers=ADMIN).text
        assert 'data-partial="prop:word" data-value="1"' in page
