"""Cluster-robust A/B statistics and the production report built from a real SQLite event store."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.serve.config import parse_config
from nextedit.serve.production import production_report
from nextedit.serve.stats import (
    chi2_sf,
    cluster_bootstrap_diff,
    compare_ratios,
    ratio_delta,
    sample_ratio_mismatch,
)
from nextedit.serve.store import open_store


def clustered_users(rng: np.random.Generator, n: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """Users with very different activity and their own acceptance propensity (strong clustering)."""
    shown = rng.geometric(1 / 40, size=n)
    p = np.clip(rng.beta(2, 2, size=n) * 2 * base, 0, 1)
    return rng.binomial(shown, p), shown


def test_ratio_delta_matches_the_formula_on_small_data():
    a, s = [1, 0, 3, 2], [2, 1, 4, 5]
    est = ratio_delta(a, s)
    r = 6 / 12
    var = (np.var(a, ddof=1) - 2 * r * np.cov(a, s, ddof=1)[0, 1] + r * r * np.var(s, ddof=1)) / (4 * 3.0 ** 2)
    assert est.value == pytest.approx(r) and est.se == pytest.approx(math.sqrt(var))
    assert est.low == pytest.approx(r - 1.959964 * est.se, rel=1e-5)
    assert ratio_delta([], []).value is None and ratio_delta([1], [2]).se is None


def test_delta_method_agrees_with_cluster_bootstrap_and_is_wider_than_naive():
    rng = np.random.default_rng(1)
    a, s = clustered_users(rng, 400, 0.3)
    est = ratio_delta(a, s)
    idx = rng.integers(0, len(a), size=(3000, len(a)))
    boot = a[idx].sum(1) / s[idx].sum(1)
    assert est.se == pytest.approx(boot.std(), rel=0.15)
    naive = math.sqrt(est.value * (1 - est.value) / s.sum())
    assert est.se > 1.5 * naive  # events of one user are not independent


def test_verdicts_and_bootstrap_interval():
    rng = np.random.default_rng(2)
    ac, sc = clustered_users(rng, 500, 0.25)
    at, st = clustered_users(rng, 500, 0.40)
    better = compare_ratios(ratio_delta(at, st), ratio_delta(ac, sc))
    assert better.verdict == "better" and better.low > 0 and better.lift > 0
    assert compare_ratios(ratio_delta(ac, sc), ratio_delta(at, st)).verdict == "worse"
    low, high = cluster_bootstrap_diff(at, st, ac, sc, resamples=1000)
    assert low < better.diff < high and low > 0
    a2, s2 = clustered_users(rng, 500, 0.25)
    assert compare_ratios(ratio_delta(a2, s2), ratio_delta(ac, sc)).verdict == "inconclusive"


def test_sample_ratio_mismatch_and_chi2():
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-4)
    assert chi2_sf(9.487729, 4) == pytest.approx(0.05, abs=1e-4)
    assert chi2_sf(11.0705, 5) == pytest.approx(0.05, abs=1e-4)
    assert sample_ratio_mismatch([5500, 4500], [0.5, 0.5]) < 1e-3
    assert sample_ratio_mismatch([5020, 4980], [0.5, 0.5]) > 0.5
    assert sample_ratio_mismatch([3000, 7000], [0.3, 0.7]) > 0.5


def fill_store(path, users_per_arm: dict[str, tuple[int, float]], seed: int = 3) -> dict[str, dict[str, int]]:
    """Write predicted/shown/accepted events for simulated users; return true counts per arm."""
    rng = np.random.default_rng(seed)
    store = open_store(path)
    truth: dict[str, dict[str, int]] = {}
    rid = 0
    for arm, (n_users, p_accept) in users_per_arm.items():
        t = truth.setdefault(arm, {"shown": 0, "accepted": 0, "users": n_users})
        for u in range(n_users):
            for _ in range(int(rng.integers(1, 12))):
                rid += 1
                common = {"request_id": f"r{rid}", "user_id": f"{arm}-u{u}", "arm": arm, "model_version": f"{arm}@1"}
                store.submit({"type": "predicted", "outcome": "ok", "total_ms": float(rng.integers(20, 200)),
                              "input_tokens": 100, "output_tokens": 10, **common}, "telemetry")
                store.submit({"type": "shown", **common})
                t["shown"] += 1
                if rng.random() < p_accept:
                    store.submit({"type": "accepted", **common})
                    t["accepted"] += 1
    store.close()
    return truth


def test_production_report_from_store(tmp_path):
    db = tmp_path / "ev.db"
    truth = fill_store(db, {"control": (300, 0.2), "student": (300, 0.45)})
    config = parse_config({"store": str(db), "arms": [
        {"name": "control", "backend": "noop", "share": 0.5, "control": True},
        {"name": "student", "backend": "noop", "share": 0.5}]})
    report = production_report(open_store(db), config)
    by = {a.name: a for a in report.arms}
    for name, t in truth.items():
        assert by[name].shown == t["shown"] and by[name].accepted == t["accepted"] and by[name].users == t["users"]
        assert by[name].acceptance.value == pytest.approx(t["accepted"] / t["shown"])
    assert by["control"].verdict == "control" and by["student"].verdict == "better"
    assert report.srm_ok and by["student"].latency_p50 is not None
    assert by["student"].input_tokens_per_request == 100


def test_sample_ratio_mismatch_blocks_the_verdict(tmp_path):
    db = tmp_path / "ev.db"
    fill_store(db, {"control": (200, 0.2), "student": (400, 0.6)})
    config = parse_config({"store": str(db), "arms": [
        {"name": "control", "backend": "noop", "share": 0.5, "control": True},
        {"name": "student", "backend": "noop", "share": 0.5}]})
    report = production_report(open_store(db), config)
    assert not report.srm_ok
    assert {a.name: a.verdict for a in report.arms}["student"].startswith("no verdict")


def test_report_production_command(tmp_path):
    db = tmp_path / "ev.db"
    truth = fill_store(db, {"control": (50, 0.2), "student": (50, 0.3)})
    out = tmp_path / "report.json"
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "production", "--store", str(db), "--since", "2000-01-01",
                                      "--json", str(out), "--html", str(html)])
    assert result.exit_code == 0, result.output
    data = orjson.loads(out.read_bytes())
    assert {a["name"]: a["shown"] for a in data["arms"]} == {k: v["shown"] for k, v in truth.items()}
    assert "<svg" in html.read_text()
    future = CliRunner().invoke(app, ["report", "production", "--store", str(db), "--since", "2999-01-01",
                                      "--json", str(out)])
    assert future.exit_code == 0 and orjson.loads(out.read_bytes())["events"] == 0
    missing = CliRunner().invoke(app, ["report", "production", "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no such event store" in missing.output


def test_jump_events_are_counted_apart_from_edit_acceptance(tmp_path):
    db = tmp_path / "ev.db"
    store = open_store(db)
    arm = "<b>jumpy</b>"
    for i, kinds in enumerate([("shown", "goto", "document"), ("shown", "goto"), ("shown",), ("shown",)]):
        common = {"request_id": f"r{i}", "user_id": f"u{i}", "arm": arm, "model_version": "m"}
        store.submit({"type": "shown", **common})  # the edit offered where the user is
        store.submit({"type": "shown", "jump": True, "reason": "code_action", **common})
        for reason in kinds[1:]:
            store.submit({"type": "accepted", "jump": True, "reason": reason, **common})
    store.submit({"type": "rejected", "jump": True, "reason": "target_changed", "request_id": "r3",
                  "user_id": "u3", "arm": arm})
    store.close()
    report = production_report(open_store(db))
    (a,) = report.arms
    assert (a.shown, a.accepted, a.rejected) == (4, 0, 0)  # jumps do not count as edits shown or accepted
    assert a.jumps == {"shown": 4, "taken": 2, "applied": 1, "rejected": 1}
    assert a.jump_acceptance == pytest.approx(0.5)
    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "production", "--store", str(db), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "4 shown, 2 taken (50.0%), 1 edits applied there, 1 rejected" in result.output
    page = html.read_text()
    assert 'data-metric="jumps_taken" data-value="2"' in page
    assert "<b>jumpy</b>" not in page and "&lt;b&gt;jumpy&lt;/b&gt;" in page
