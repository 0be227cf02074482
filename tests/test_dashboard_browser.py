"""The /dashboard page in real headless Chromium: it loads after logging in, its numbers match the event
store, and hostile values from clients or the store are shown as text: no script runs."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from browser_support import CHROMIUM, FLAGS, HAVE_CHROMIUM, SKIP_REASON
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.serve.config import parse_config
from nextedit.serve.testing import ServerThread

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason=SKIP_REASON)

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
                assert page.goto(server.url + f"/dashboard?token={ADMIN}").status == 401  # never in a URL
                resp = login(page, server.url)
                assert resp.status == 200 and page.url == server.url + "/dashboard"
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


def login(page, base: str, token: str = ADMIN):
    """Log in through the /login form; the answer of the page it lands on."""
    page.goto(base + "/login")
    with page.expect_navigation() as nav:
        page.fill("#token", token)
        page.click("#submit")
    return nav.value


HOSTILE = ['<script>window.__pwned = "script"</script>', '<img src=x onerror="window.__pwned=\'img\'">',
           '"><svg onload="window.__pwned=\'svg\'"></svg>', "</text><script>window.__pwned='svg-text'</script>"]


def _assert_inert(page) -> None:
    assert page.evaluate("window.__pwned === undefined"), page.evaluate("window.__pwned")
    # Escaped, not merely blocked by the Content-Security-Policy: no element came from the data.
    assert page.evaluate("document.querySelectorAll('script, img, [onerror], [onload], svg svg').length") == 0
    labels = page.evaluate("[...document.querySelectorAll('svg text')].map(t => t.textContent)")
    assert any(value in labels for value in HOSTILE), labels
    text = page.locator("body").inner_text()
    for value in HOSTILE:
        assert value in text  # shown as text, not run


def test_hostile_arm_names_never_run_as_script(tmp_path):
    db = tmp_path / "ev.db"
    config = parse_config({"store": str(db), "auth": {"api_keys": [KEY], "admin_token": ADMIN}, "arms": [
        {"name": "control", "backend": "noop", "share": 0.5, "control": True},
        {"name": "student", "backend": "propagate", "share": 0.5}]})
    with ServerThread(config) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
            rid = client.post("/v1/predict", json={"snapshot": SNAP, "client_id": "c", "user_id": "u"}).json()[
                "request_id"]
            for value in HOSTILE:  # an API-key holder names a hostile arm: the server keeps its own
                ok = client.post("/v1/events", json={"type": "shown", "request_id": rid, "arm": value,
                                                     "model_version": value})
                assert ok.status_code == 200 and ok.json()["arm"] in ("control", "student")
                forged = client.post("/v1/events", json={"type": "shown", "request_id": value, "arm": value})
                assert forged.status_code == 422
        # Rows an older server (or anyone with write access to the store) left behind.
        conn = sqlite3.connect(db)
        for i, value in enumerate(HOSTILE):
            payload = {"type": "rejected", "request_id": f"old{i}", "arm": value, "model_version": value,
                       "user_id": f"u{i}", "reason": value, "at": "2026-01-01T00:00:00.000Z"}
            conn.execute("INSERT INTO events (at, type, request_id, user_id, arm, model_version, payload) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (payload["at"], "rejected", f"old{i}", f"u{i}", value, value,
                                                          json.dumps(payload)))
        conn.commit()
        conn.close()
        html_file = tmp_path / "report.html"
        result = CliRunner().invoke(app, ["report", "production", "--store", str(db), "--html", str(html_file)])
        assert result.exit_code == 0, result.output

        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            try:
                page = browser.new_page()
                dialogs: list[str] = []
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                resp = login(page, server.url)
                assert resp.status == 200
                csp = resp.headers["content-security-policy"]
                assert "default-src 'none'" in csp and "script-src" not in csp
                assert page.context.cookies()[0]["httpOnly"] is True
                assert page.evaluate("document.cookie") == ""  # the session is out of scripts' reach
                _assert_inert(page)
                page.goto(html_file.as_uri())  # the page `report production --html` writes
                _assert_inert(page)
                assert dialogs == []
            finally:
                browser.close()
