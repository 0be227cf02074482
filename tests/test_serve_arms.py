"""A/B arms over real HTTP: shares over 10,000 simulated users, stickiness, shadow arms, reload."""

from __future__ import annotations

import math
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from nextedit.serve.arms import assign_arm
from nextedit.serve.config import ServeConfigError, parse_config
from nextedit.serve.testing import ServerThread

KEY, ADMIN = "k", "admin"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = "x = amount\ny = amount\n"
SNAP = {"path": "a.py", "text": TEXT, "cursor": 0,
        "history": [{"path": "a.py", "diff": "@@ -1,1 +1,1 @@\n-amount = 1\n+qty = 1\n"}]}

ARMS = [
    {"name": "control", "backend": "noop", "share": 0.5, "control": True},
    {"name": "b", "backend": "propagate", "share": 0.3},
    {"name": "c", "backend": "noop", "share": 0.2, "model_version": "noop-c"},
    {"name": "shadow", "backend": "propagate", "shadow": True, "share": 1.0},
]


def write_config(path, arms, db):
    lines = [f'store = "{db}"', "[auth]", f'api_keys = ["{KEY}"]', f'admin_token = "{ADMIN}"']
    for arm in arms:
        lines.append("[[arms]]")
        for k, v in arm.items():
            lines.append(f"{k} = {orjson.dumps(v).decode()}")
    path.write_text("\n".join(lines) + "\n")


def within(observed: int, n: int, share: float) -> bool:
    """Observed count within 5 binomial standard deviations of n * share."""
    return abs(observed - n * share) <= 5 * math.sqrt(n * share * (1 - share)) + 1


def ask(client: httpx.Client, user: str, **extra: object) -> dict:
    resp = client.post("/v1/predict", json={"snapshot": SNAP, "client_id": f"c-{user}", "user_id": user, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.slow
def test_shares_over_10000_users_sticky_and_reload(tmp_path):
    from nextedit.serve.config import load_config

    cfg_path = tmp_path / "serve.toml"
    live = [a for a in ARMS if not a.get("shadow")]
    write_config(cfg_path, live, tmp_path / "ev.db")
    n = 10_000
    users = [f"user-{i}" for i in range(n)]
    with (ServerThread(load_config(cfg_path), config_path=str(cfg_path)) as server,
          httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client):

        def arm_of(user: str) -> str:
            return ask(client, user)["arm"]

        with ThreadPoolExecutor(4) as pool:
            first = dict(zip(users, pool.map(arm_of, users), strict=True))
        counts = Counter(first.values())
        for arm in live:
            assert within(counts[arm["name"]], n, arm["share"]), (arm["name"], counts)
        # Sticky: the same users get the same arms again.
        again = {u: arm_of(u) for u in users[:300]}
        assert again == {u: first[u] for u in users[:300]}
        # A preferred arm is honoured; an unknown one falls back to the sticky assignment.
        assert ask(client, users[0], arm="c")["arm"] == "c"
        assert ask(client, users[0], arm="nope")["arm"] == first[users[0]]
        # Every response carries the arm's model version.
        assert ask(client, users[0], arm="c")["model_version"] == "noop-c"

        # Move 0.2 of share from control to b and reload without a restart.
        moved = [{**live[0], "share": 0.3}, {**live[1], "share": 0.5}, live[2]]
        write_config(cfg_path, moved, tmp_path / "ev.db")
        resp = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"})
        assert resp.status_code == 200, resp.text
        sample = users[:2000]
        with ThreadPoolExecutor(4) as pool:
            after = dict(zip(sample, pool.map(arm_of, sample), strict=True))
        counts = Counter(after.values())
        assert within(counts["b"], len(sample), 0.5) and within(counts["control"], len(sample), 0.3)
        # Only users at the boundary moved (control -> b); nobody else changed arm.
        changed = {(first[u], after[u]) for u in sample if first[u] != after[u]}
        assert changed == {("control", "b")}

        # A bad config is refused and the old one stays live.
        cfg_path.write_text(cfg_path.read_text().replace("share = 0.5", "share = 0.9"))
        bad = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"})
        assert bad.status_code == 422 and "sum to 1" in bad.json()["error"]
        assert ask(client, users[0])["arm"] == after[users[0]]


def test_assignment_function_matches_shares_without_http():
    config = parse_config({"arms": ARMS, "salt": "exp-7"})
    counts = Counter(assign_arm(config, f"u{i}").name for i in range(50_000))
    assert "shadow" not in counts
    for arm in ARMS[:3]:
        assert within(counts[arm["name"]], 50_000, arm["share"])


def test_shadow_arm_is_logged_but_never_returned(tmp_path):
    db = tmp_path / "ev.db"
    config = parse_config({"store": str(db), "auth": {"api_keys": [KEY]},
                           "arms": [{"name": "live", "backend": "noop", "share": 1.0}, ARMS[3]]})
    with ServerThread(config) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        answers = [ask(client, f"u{i}") for i in range(20)]
        answers.append(ask(client, "u0", arm="shadow"))  # asking for the shadow arm does not expose it
        assert {a["arm"] for a in answers} == {"live"}
        assert all(a["prediction"] is None and a["reason"] == "empty" for a in answers)
        deadline = time.monotonic() + 10
        while True:
            conn = sqlite3.connect(db)
            shadow_rows = conn.execute("SELECT payload FROM telemetry WHERE type = 'shadow'").fetchall()
            conn.close()
            if len(shadow_rows) >= len(answers) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    logged = [orjson.loads(r[0]) for r in shadow_rows]
    assert len(logged) == len(answers)
    assert {p["arm"] for p in logged} == {"shadow"} and {p["live_arm"] for p in logged} == {"live"}
    # The shadow (propagate) did predict an edit; the live arm (noop) did not: they disagree.
    assert {p["outcome"] for p in logged} == {"ok"}
    assert not any(p["agrees_with_live"] for p in logged)
    assert {p["request_id"] for p in logged} == {a["request_id"] for a in answers}


@pytest.mark.parametrize("arms, message", [
    ([{"name": "a", "backend": "noop", "share": 0.4}, {"name": "b", "backend": "noop", "share": 0.4}], "sum to 1"),
    ([{"name": "a", "backend": "noop", "share": 1.0}, {"name": "a", "backend": "noop", "shadow": True}], "unique"),
    ([{"name": "a", "backend": "noop", "shadow": True, "share": 0.5}], "live"),
    ([{"name": "a b", "backend": "noop", "share": 1.0}], "arms[0].name"),
])
def test_bad_configs_name_the_field(arms, message):
    with pytest.raises(ServeConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({"arms": arms}, source="serve.toml")


def test_serve_command_starts_answers_and_refuses_bad_configs(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from typer.testing import CliRunner

    from nextedit.cli import app
    from nextedit.serve.testing import free_port

    bad = tmp_path / "bad.toml"
    bad.write_text('[[arms]]\nname = "a"\nbackend = "noop"\nshare = 0.5\n[[arms]]\nname = "b"\nbackend = "noop"\n'
                   'share = 0.2\n')
    result = CliRunner().invoke(app, ["serve", str(bad)])
    assert result.exit_code == 2 and "bad.toml: field arms: live arm shares must sum to 1" in result.output
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[arms]]\nname = "a"\nbackend = "nope"\n')
    result = CliRunner().invoke(app, ["serve", str(unknown)])
    assert result.exit_code == 2 and "unknown provider 'nope'" in result.output

    good = tmp_path / "serve.toml"
    write_config(good, [{"name": "prop", "backend": "propagate", "share": 1.0}], tmp_path / "ev.db")
    port = free_port()
    nextedit = os.path.join(os.path.dirname(sys.executable), "nextedit")
    proc = subprocess.Popen([nextedit, "serve", str(good), "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = httpx.post(f"http://127.0.0.1:{port}/v1/predict", headers=AUTH, timeout=5,
                                  json={"snapshot": SNAP, "client_id": "c", "user_id": "u"})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert resp.status_code == 200 and resp.json()["prediction"]["edits"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM; the prediction log was flushed on the way out.
    assert proc.returncode in (0, -signal.SIGTERM)
    conn = sqlite3.connect(tmp_path / "ev.db")
    assert conn.execute("SELECT COUNT(*) FROM telemetry WHERE type = 'predicted'").fetchone() == (1,)
    conn.close()
