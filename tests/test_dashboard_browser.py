"""The /dashboard page in real headless Chromium: it loads, and its numbers match the event store."""

from __future__ import annotations

import shutil
import sqlite3

import httpx
import pytest

from nextedit.serve.config import parse_config
from nextedit.serve.testing import ServerThread

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed "
                                "(apt-get install -y chromium)")

KEY, ADMIN = "k", "admin"
TEXT = "a = amount\nb = amount\n"
SNAP = {"path": "m.py", "text": TEXT, "cursor": 0,
        "history": [{"path": "m.py", "diff": "@@ -1,1 +1,1 @@\n-amount = 1\n+qty = 1\n"}]}


def test_dashboard_numbers_match_the_store(tmp_path):
    db = tmp_path / "ev.db"
    config = parse_config({"store": str(db), "auth": {"api_keys": [KEY], "admin_token": ADMIN}, "arms": [
        {"name": "control", "backend": "noop", "share": 0.5, "control": True},
        {"name": "student", "backend": "propagate", "share": 0.5}]})
    with ServerThread(config) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
            for i in range(40):
                body = client.post("/v1/predict", json={"snapshot": SNAP, "client_id": f"c{i}",
                                                        "user_id": f"user-{i}"}).json()
                for k in range(i % 3 + 1):
                    client.post("/v1/events", json={"type": "shown", "request_id": body["request_id"]})
                    if (i + k) % 2 == 0:
                        client.post("/v1/events", json={"type": "accepted", "request_id": body["request_id"]})
                if body["prediction"]:
                    client.post("/v1/events", json={"type": "settled", "request_id": body["request_id"],
                                                    "settled_text": TEXT.replace("amount", "qty")})
        conn = sqlite3.connect(db)
        union = "(SELECT arm, type, user_id FROM events UNION ALL SELECT arm, type, user_id FROM telemetry)"
        counts = {(arm, kind): n for arm, kind, n in conn.execute(
            f"SELECT arm, type, COUNT(*) FROM {union} GROUP BY arm, type")}
        users = dict(conn.execute(f"SELECT arm, COUNT(DISTINCT user_id) FROM {union} GROUP BY arm"))
        conn.close()

        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            try:
                page = browser.new_page()
                denied = page.goto(server.url + "/dashboard")
                assert denied.status == 401
                resp = page.goto(server.url + f"/dashboard?token={ADMIN}")
                assert resp.status == 200
                assert page.title() == "nextedit — production"
                assert page.locator("svg").count() >= 3
                assert page.locator("#control").inner_text() == "control"
                for arm in ("control", "student"):
                    row = page.locator(f'#arms tr[data-arm="{arm}"]')

                    def cell(metric: str, row=row) -> str:
                        return row.locator(f'td[data-metric="{metric}"]').get_attribute("data-value")

                    assert int(cell("shown")) == counts.get((arm, "shown"), 0)
                    assert int(cell("accepted")) == counts.get((arm, "accepted"), 0)
                    assert int(cell("requests")) == counts.get((arm, "predicted"), 0)
                    assert int(cell("users")) == users[arm]
                    shown, accepted = counts.get((arm, "shown"), 0), counts.get((arm, "accepted"), 0)
                    assert float(cell("acceptance")) == pytest.approx(accepted / shown)
                student_kept = page.locator('#quality tr[data-arm="student"] td[data-metric="kept"]')
                assert float(student_kept.get_attribute("data-value")) == pytest.approx(1.0)
                assert page.locator('#arms tr[data-arm="student"] td[data-metric="verdict"]').inner_text() in (
                    "better", "worse", "inconclusive")
            finally:
                browser.close()
