"""`nextedit feedback eval`: per-record metrics of a candidate against the current (recorded) student on
held-out users' records, paired differences with intervals over users, and the command's output."""

from __future__ import annotations

import json

import orjson
from feedback_fixtures import BAD, GOOD, TEXT, UNDO, record
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.feedback.offline import Answer, evaluate_answers, record_values

runner = CliRunner()


def test_record_values_follow_the_outcome():
    rejected = record(0, "rejected", BAD, GOOD)
    same = record_values(rejected, Answer(BAD))
    assert same["reproduces_rejected"] == 1.0 and same["no_edit_where_rejected"] == 0.0
    assert same["delta_chrf"] < 100 and same["reversal_ratio"] == 0.0
    right = record_values(rejected, Answer(GOOD))
    assert right["reproduces_rejected"] == 0.0 and right["delta_chrf"] == 100.0
    assert record_values(rejected, Answer(TEXT))["no_edit_where_rejected"] == 1.0
    accepted = record(1, "accepted", GOOD, None)
    values = record_values(accepted, Answer(UNDO))
    assert values == {"keeps_accepted": 0.0, "reversal_ratio": 1.0}  # no settled text: no deltaChrF


def held_out() -> list:
    out = []
    for u in range(12):
        out.append(record(2 * u, "rejected", BAD, GOOD, user=f"u{u}"))
        out.append(record(2 * u + 1, "accepted", GOOD, GOOD, user=f"u{u}"))
    return out


def test_paired_differences_resample_users():
    records = held_out()
    answers = {"recorded": [Answer(r.prediction.region) for r in records],
               "fixed": [Answer(GOOD) for _ in records], "silent": [Answer(TEXT) for _ in records]}
    result = evaluate_answers(records, answers, current="recorded", resamples=200)
    assert result["users"] == 12 and result["outcomes"] == {"accepted": 12, "rejected": 12}
    fixed = result["paired"]["fixed"]
    assert fixed["reproduces_rejected"]["mean"] == -1.0 and fixed["reproduces_rejected"]["verdict"] == "better"
    assert fixed["keeps_accepted"]["mean"] == 0.0 and fixed["keeps_accepted"]["verdict"] == "inconclusive"
    assert fixed["delta_chrf"]["mean"] > 0 and fixed["delta_chrf"]["verdict"] == "better"
    assert fixed["reproduces_rejected"]["users"] == 12 and fixed["reproduces_rejected"]["records"] == 12
    silent = result["paired"]["silent"]
    assert silent["no_edit_where_rejected"]["verdict"] == "better"
    assert silent["keeps_accepted"]["verdict"] == "worse"
    assert result["models"]["recorded"]["reproduces_rejected"]["mean"] == 1.0


def test_eval_command_with_a_scripted_candidate_and_noop(tmp_path):
    records = held_out()
    path = tmp_path / "fb.eval.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in records))
    script = tmp_path / "candidate.json"
    script.write_text(json.dumps({r.id: [{"region": GOOD}] for r in records}))
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["feedback", "eval", str(path), "--candidate", f"scripted:{script}",
                                 "--candidate", "noop", "--resamples", "200", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "reproduces rejected" in result.output and "(current)" in result.output
    saved = json.loads(out.read_text())
    assert saved["paired"][f"scripted:{script}"]["reproduces_rejected"]["verdict"] == "better"
    assert saved["paired"]["noop"]["no_edit_where_rejected"]["mean"] == 1.0


def test_eval_command_errors_are_one_line(tmp_path):
    missing = runner.invoke(app, ["feedback", "eval", str(tmp_path / "nope.jsonl"), "--candidate", "noop"])
    assert missing.exit_code == 2 and "nope.jsonl: no such file" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    result = runner.invoke(app, ["feedback", "eval", str(bad), "--candidate", "noop"])
    assert result.exit_code == 2 and "bad.jsonl:1: field request_id: Field required" in result.output
    good = tmp_path / "good.jsonl"
    good.write_bytes(orjson.dumps(held_out()[0].model_dump(mode="json")) + b"\n")
    unknown = runner.invoke(app, ["feedback", "eval", str(good), "--candidate", "nosuch:thing"])
    assert unknown.exit_code == 2 and "nosuch" in unknown.output
