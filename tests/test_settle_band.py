"""The settle filter with a scripted predictor whose answer is known: equal, near and unrelated settled texts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from nextedit import patch as patchlib
from nextedit.cli import app
from nextedit.jsonl import read_dicts, read_examples, write_examples
from nextedit.pipeline.registry import get_stage
from nextedit.pipeline.stage import StageError
from nextedit.predictors import PredictorError, get_predictor
from nextedit.record import Example, Settled, Snapshot
from nextedit.settle.band import Band, BandSpec, apply_band, classify, resolve_band
from nextedit.settle.stage import (
    SettleCpuStage,
    SettleStage,
    settle_candidates,
    stage_for,
)

runner = CliRunner()

HEADER = "import math\n\n"
BODY = "def area(r):\n    return 3.14 * r * r\n\n\ndef perimeter(r):\n    return 2 * 3.14 * r\n"
TEXT = HEADER + BODY
EDITABLE = (len(HEADER), len(TEXT))

# Candidate regions the scripted predictor returns (same for every example).
CANDIDATES = [
    BODY.replace("3.14", "math.pi"),                                         # 0: both functions
    BODY.replace("3.14 * r * r", "math.pi * r ** 2"),                        # 1: only area
    BODY.replace("def area(r):", "def area(r: float) -> float:"),           # 2: annotate
]
NEAR = CANDIDATES[1].replace("r ** 2", "r**2")  # 2 characters from candidate 1
UNRELATED = "class Shape:\n    sides: int = 0\n\n    def __repr__(self) -> str:\n        return f'<{self.sides}>'\n"


def example(eid: str, settled: str | None) -> Example:
    return Example(id=eid, snapshot=Snapshot(path="geo.py", text=TEXT, cursor=len(HEADER) + 5, editable=EDITABLE,
                                             start_line=10),
                   settled=None if settled is None else Settled(text=settled, quiet_s=10.0),
                   rejected="model output")


def script(tmp_path, table: dict) -> str:
    path = tmp_path / "candidates.json"
    path.write_bytes(orjson.dumps(table))
    return str(path)


def regions(ids: list[str]) -> dict:
    return {i: [{"region": c, "cursor": 3} for c in CANDIDATES] for i in ids}


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    table = regions(["equal", "near", "unrelated"])
    table["broken"] = ["not a patch", {"error": "timeout"}, "@@ -1,1 +1,1 @@\n-nothing like this\n+x\n"]
    src = tmp_path / "in.jsonl"
    write_examples(src, [example("equal", CANDIDATES[2]), example("near", NEAR), example("unrelated", UNRELATED),
                         example("broken", NEAR), example("nosettled", None)])
    return src, script(tmp_path, table)


def test_scripted_predictor_returns_patches_that_reproduce_the_regions(tmp_path):
    provider = "scripted:" + script(tmp_path, regions(["a"]))
    ex = example("a", NEAR)
    preds = get_predictor(provider).predict(ex, samples=2)
    assert [p.sample for p in preds] == [0, 1] and all(p.provider == provider for p in preds)
    for pred, region in zip(preds, CANDIDATES, strict=False):
        assert patchlib.to_region(pred.patch, TEXT, EDITABLE, start_line=10)[1] == region
    assert get_predictor(provider).predict(example("unknown", NEAR), samples=5) == []
    with pytest.raises(PredictorError, match="no such file"):
        get_predictor("scripted:" + str(tmp_path / "missing.json"))


def test_scripted_jsonl_is_read_by_offset_and_bad_rows_name_the_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "x", "candidates": ["p1", "p2"]}\n\n{"id": "y", "candidates": [{"patch": "p3"}]}\n')
    pred = get_predictor(f"scripted:{path}")
    assert [p.patch for p in pred.predict(example("y", NEAR), samples=3)] == ["p3"]
    assert [p.patch for p in pred.predict(example("x", NEAR), samples=1)] == ["p1"]
    path.write_bytes(b'{"id": "x", "candidates": ["p1"]}\n{"id": "y"}\n')
    with pytest.raises(PredictorError, match=r"c.jsonl:2: field candidates"):
        get_predictor(f"scripted:{path}")


def test_settle_candidates_picks_the_closest_candidate(tmp_path):
    provider = "scripted:" + script(tmp_path, regions(["near"]))
    stage = stage_for({"provider": provider, "samples": 3})
    assert isinstance(stage, SettleCpuStage)
    out = stage.process(example("near", NEAR))
    info = out.settle
    assert info["best"]["index"] == 1 and info["best"]["cursor"] == 3
    assert info["valid"] == 3 and len(info["distances"]) == 3
    assert info["best"]["distance"] == min(info["distances"]) > 0
    assert info["distances"][1] == pytest.approx(2 / len(CANDIDATES[1]), abs=1e-5)
    assert info["no_edit_distance"] > info["best"]["distance"]
    with pytest.raises(StageError, match="no settled text"):
        stage.process(example("near", None))


@pytest.mark.parametrize("metric", ["levenshtein", "levenshtein_change", "kept_rate", "delta_chrf"])
def test_every_metric_ranks_the_equal_candidate_first(tmp_path, metric):
    provider = "scripted:" + script(tmp_path, regions(["e"]))
    ex = example("e", CANDIDATES[2])
    preds = get_predictor(provider).predict(ex, samples=3)
    info = settle_candidates(ex, preds, stage_for({"provider": provider, "metric": metric}).config).settle
    assert info["best"]["index"] == 2 and info["best"]["distance"] == pytest.approx(0.0, abs=1e-9)
    assert all(d > 0 for i, d in enumerate(info["distances"]) if i != 2)
    assert metric in info["signature"]


def test_async_stage_is_registered_and_gives_the_same_result(tmp_path):
    provider = "scripted:" + script(tmp_path, regions(["near"]))
    assert get_stage("settle") is SettleStage
    stage = SettleStage({"provider": provider, "samples": 3})
    assert stage.kind == "cpu"  # an in-process predictor: the executor may use worker processes
    sync = stage.process(example("near", NEAR))
    async_ = asyncio.run(SettleStage({"provider": provider, "samples": 3}).process_async(example("near", NEAR)))
    assert sync.settle == async_.settle


def test_band_classifies_and_quantiles_follow_the_distribution():
    band = Band(0.0, 0.3, "absolute")
    assert [classify(d, band) for d in (0.0, 0.01, 0.3, 0.31, None)] == [
        "too_trivial", "kept", "kept", "too_noisy", "no_candidate"]
    best = np.linspace(0.0, 1.0, 101)
    q = resolve_band(best, BandSpec(low_quantile=0.1, high_quantile=0.9))
    assert (q.low, q.high, q.mode) == (pytest.approx(0.1), pytest.approx(0.9), "quantile")
    assert resolve_band(best, BandSpec(low=0.05, high=0.5, high_quantile=0.2)).high == pytest.approx(0.2)
    with pytest.raises(ValueError, match="above high"):
        BandSpec(low=0.5, high=0.1)


def test_settle_command_keeps_near_drops_equal_and_unrelated(files, tmp_path):
    src, table = files
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["settle", str(src), "--provider", f"scripted:{table}", "--samples", "3",
                                 "-o", str(out), "--low", "0", "--high", "0.3", "-j", "1"])
    assert result.exit_code == 0, result.output
    [kept] = list(read_examples(out))
    assert kept.id == "near"
    # The target is the closest candidate's patch, not the settled text.
    assert patchlib.to_region(kept.expected[0], TEXT, EDITABLE, start_line=10)[1] == CANDIDATES[1]
    assert kept.expected_cursors == [3] and kept.settled.text == NEAR and kept.rejected == "model output"
    assert kept.settle["decision"] == "kept" and kept.lineage[-1].stage == "settle-band"
    dropped = {d["id"]: d["settle"]["decision"] for _, d in read_dicts(tmp_path / "out.dropped.jsonl")}
    assert dropped == {"equal": "too_trivial", "unrelated": "too_noisy", "broken": "no_candidate"}
    failed = [d for _, d in read_dicts(tmp_path / "out.distances.failed.jsonl")]
    assert [f["id"] for f in failed] == ["nosettled"] and "no settled text" in failed[0]["reason"]
    summary = orjson.loads((tmp_path / "out.summary.json").read_bytes())
    assert {k: summary["counts"][k] for k in ("examples", "kept", "too_trivial", "too_noisy", "no_candidate",
                                              "failed")} == {
        "examples": 4, "kept": 1, "too_trivial": 1, "too_noisy": 1, "no_candidate": 1, "failed": 1}
    assert summary["counts"]["invalid_candidates"] == 3 and sum(summary["histogram"]["counts"]) == 3
    assert {k: sum(v) for k, v in summary["histogram"]["by_decision"].items()} == {
        "kept": 1, "too_trivial": 1, "too_noisy": 1}
    assert summary["samples"]["too_noisy"][0]["id"] == "unrelated"
    assert summary["cost"]["teacher_usd"] > 0 and summary["cost"]["student_usd"] == 0
    html = (tmp_path / "out.report.html").read_text()
    assert "<svg" in html and "near" in html and "too noisy" in html and "<script" not in html
    assert '<span class="add">+' in html and '<span class="del">-' in html  # request -> settled, as a diff


def test_quantile_band_from_the_command_and_rerun_uses_the_cache(files, tmp_path):
    src, table = files
    out = tmp_path / "q.jsonl"
    args = ["settle", str(src), "--provider", f"scripted:{table}", "-n", "3", "-o", str(out),
            "--low-quantile", "0.0", "--high-quantile", "0.5", "-j", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = orjson.loads((tmp_path / "q.summary.json").read_bytes())
    # Best distances: equal 0, near small, unrelated large -> median = near's distance: keep only near.
    assert summary["band"]["mode"] == "quantile" and summary["band"]["low"] == 0.0
    assert [e.id for e in read_examples(out)] == ["near"]
    again = runner.invoke(app, args)  # same predictor and config: every stage result comes from the cache
    assert again.exit_code == 0 and "processed 4 (from cache 4)" in again.output
    assert [e.id for e in read_examples(out)] == ["near"]
    fresh = runner.invoke(app, [*args, "--no-cache"])
    assert fresh.exit_code == 0 and "(from cache 0)" in fresh.output
    # Another band on the same distances, without the predictor (its file is gone).
    Path(table).unlink()
    wide = runner.invoke(app, ["settle", str(src), "-p", f"scripted:{table}", "-o", str(out), "--band-only",
                               "--low", "0", "--high", "1"])
    assert wide.exit_code == 0, wide.output
    assert sorted(e.id for e in read_examples(out)) == ["near", "unrelated"]
    missing = runner.invoke(app, ["settle", str(src), "-o", str(tmp_path / "other.jsonl"), "--band-only"])
    assert missing.exit_code == 2 and "run without --band-only first" in missing.output


def test_bad_options_are_one_line_errors(files, tmp_path):
    src, table = files
    result = runner.invoke(app, ["settle", str(src), "-p", "nosuch", "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "unknown provider" in result.output
    result = runner.invoke(app, ["settle", str(src), "-p", f"scripted:{table}", "--metric", "bleu",
                                 "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "metric" in result.output
    result = runner.invoke(app, ["settle", str(src), "-p", f"scripted:{table}", "--low", "0.5", "--high", "0.1",
                                 "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "above high" in result.output


def test_a_rejected_output_equal_to_the_new_target_is_cleared(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    table = script(tmp_path, regions(["near", "other"]))
    same = get_predictor(f"scripted:{table}").predict(example("near", NEAR), samples=2)[1].patch
    a, b = example("near", NEAR), example("other", NEAR)
    a.rejected = same  # the model had answered exactly the closest candidate
    src = tmp_path / "in.jsonl"
    write_examples(src, [a, b])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["settle", str(src), "-p", f"scripted:{table}", "-n", "3", "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    kept = {e.id: e for e in read_examples(out)}
    assert kept["near"].rejected is None and kept["near"].settle["rejected_cleared"]
    assert kept["other"].rejected == "model output" and "rejected_cleared" not in kept["other"].settle


def test_band_pass_refuses_input_without_the_stage_output(tmp_path):
    src = tmp_path / "plain.jsonl"
    write_examples(src, [example("a", NEAR)])
    with pytest.raises(ValueError, match=r"plain.jsonl:1: field settle"):
        apply_band(src, tmp_path / "o.jsonl", BandSpec())
