"""The predict/score stages, the summary JSON (means, micro sums, percentiles, CIs) and `nextedit eval`."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest
from eval_fixtures import dataset, predict_and_score, rename_example
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.evaluate import bootstrap
from nextedit.evaluate.stages import PredictStage, ScoreStage
from nextedit.evaluate.summary import SummaryBuilder, summarize, summarize_examples
from nextedit.jsonl import read_examples, write_examples
from nextedit.pipeline.registry import get_stage
from nextedit.pipeline.stage import StageError
from nextedit.record import Prediction, Score

runner = CliRunner()


@pytest.fixture(scope="module")
def scored() -> list:
    return predict_and_score(dataset())


def test_stages_are_registered() -> None:
    assert get_stage("predict") is PredictStage
    assert get_stage("score") is ScoreStage
    # the predictor's version and the metric signatures key the cache
    stage = PredictStage({"provider": "propagate"})
    assert stage.version.endswith(f"+propagate.{stage.predictor.version}")
    assert ScoreStage.version.startswith("1+metrics.")


def test_predict_replaces_its_own_predictions_and_reindexes_other_scores() -> None:
    ex = rename_example(0)
    ex.predictions = [Prediction(provider="propagate", patch=""), Prediction(provider="teacher", patch="")]
    ex.scores = [Score(prediction=0, values={"delta_chrf": 0.0}), Score(prediction=1, values={"delta_chrf": 5.0})]
    out = asyncio.run(PredictStage({"provider": "propagate", "samples": 2}).process(ex))
    assert [p.provider for p in out.predictions] == ["teacher", "propagate", "propagate"]
    assert [p.sample for p in out.predictions[1:]] == [0, 1]
    assert [(s.prediction, s.values["delta_chrf"]) for s in out.scores] == [(0, 5.0)]


def test_score_stage_scores_every_prediction_and_quarantines_bad_references() -> None:
    ex = predict_and_score([rename_example(0)])[0]
    assert [s.prediction for s in ex.scores] == [0, 1]
    assert ex.scores[1].values["delta_chrf"] == 100.0  # propagate finishes the rename
    assert ex.scores[0].values["no_edit_predicted"] is True
    ex.expected = ["@@ -1 +1 @@\n-no such line\n+x\n"]
    with pytest.raises(StageError, match="score prediction 0"):
        ScoreStage().process(ex)


def test_summary_means_and_micro_sums_match_the_rows(scored: list) -> None:
    summary = summarize_examples(scored, resamples=100)
    rows = [r for r in summary["examples"] if r["provider"] == "propagate"]
    stats = summary["providers"]["propagate"]
    assert stats["counts"] == {"examples": 12, "predictions": 12, "errors": 0,
                               "no_edit_predicted": 6, "no_edit_expected": 2}
    assert stats["means"]["delta_chrf"] == pytest.approx(np.mean([r["values"]["delta_chrf"] for r in rows]))
    tp = sum(r["values"]["exact_lines_tp"] for r in rows)
    fp = sum(r["values"]["exact_lines_fp"] for r in rows)
    fn = sum(r["values"]["exact_lines_fn"] for r in rows)
    micro = stats["micro"]["exact_lines"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (tp, fp, fn)
    assert micro["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert stats["rates"]["no_edit_predicted"] == pytest.approx(0.5)
    # edit sizes only over predictions that edit (the 6 renames: 2 tokens in, 2 out)
    assert stats["edit_size"]["inserted_tokens"]["p50"] == 2.0
    assert stats["edit_size"]["total_tokens"]["p99"] == 4.0
    assert summary["signatures"]["delta_chrf"] == "delta_chrf:v3|n=6|beta=0.5|ws=collapse"
    assert set(summary["by_language"]["noop"]) == {"python", "rust", "typescript"}
    assert summary["totals"] == {"examples": 12, "scored_predictions": 24, "unscored_predictions": 0,
                                 "failed_examples": 0}


def test_bootstrap_intervals_are_seeded_and_bracket_the_mean(scored: list) -> None:
    a = summarize_examples(scored, resamples=300, seed=7)
    b = summarize_examples(scored, resamples=300, seed=7)
    for provider in ("noop", "propagate"):
        lo, hi = a["providers"][provider]["ci"]["delta_chrf"]
        assert lo <= a["providers"][provider]["means"]["delta_chrf"] <= hi
        assert a["providers"][provider]["ci"] == b["providers"][provider]["ci"]
    lo, hi = a["providers"]["propagate"]["ci"]["delta_chrf"]
    assert hi > lo  # 6 perfect renames, 4 misses, 2 no-edit: the mean is uncertain


def test_bootstrap_helpers() -> None:
    const = np.full(30, 4.0)
    assert bootstrap.ratio_ci(const, np.ones(30)) == (4.0, 4.0)
    lo, hi = bootstrap.ratio_ci(np.arange(100.0), np.ones(100), resamples=500)
    assert 40 < lo < 49.5 < hi < 59
    assert bootstrap.f1_ci(np.ones(5), np.zeros(5), np.zeros(5)) == (1.0, 1.0)
    assert bootstrap.ratio_ci(np.array([]), np.array([])) is None


def test_samples_are_resampled_as_one_example() -> None:
    ex = predict_and_score([rename_example(0)], providers=())[0]
    ex = asyncio.run(PredictStage({"provider": "propagate", "samples": 3}).process(ex))
    ex = ScoreStage().process(ex)
    builder = SummaryBuilder()
    builder.add(ex)
    stats = summarize(builder, resamples=50)["providers"]["propagate"]
    assert stats["counts"]["examples"] == 1 and stats["counts"]["predictions"] == 3


def _write(tmp_path, examples) -> str:
    path = tmp_path / "in.jsonl"
    write_examples(path, examples)
    return str(path)


def test_eval_baseline_must_be_one_of_the_providers_before_any_work(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    src = _write(tmp_path, dataset(2, 0, 0))
    rep = tmp_path / "rep"
    result = runner.invoke(app, ["eval", src, "-p", "noop", "--baseline", "propagat", "--report", str(rep)])
    assert result.exit_code == 2
    assert "--baseline 'propagat' is none of the providers: noop" in result.output
    assert not list(rep.glob("predictions.*"))
    ok = runner.invoke(app, ["eval", src, "-p", "noop", "-p", "propagate", "--baseline", "noop", "--report", str(rep),
                             "-j", "1", "--resamples", "50"])
    assert ok.exit_code == 0, ok.output
    summary = orjson.loads((rep / "summary.json").read_bytes())
    assert summary["paired"]["baseline"] == "noop" and set(summary["paired"]["differences"]) == {"propagate"}


def test_eval_command_predicts_scores_and_writes_summary_and_report(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    src = _write(tmp_path, dataset())
    rep = tmp_path / "rep"
    result = runner.invoke(app, ["eval", src, "-p", "noop", "-p", "propagate", "--report", str(rep),
                                 "-j", "1", "--resamples", "100"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads((rep / "summary.json").read_bytes())
    assert set(summary["providers"]) == {"noop", "propagate"}
    assert summary["providers"]["propagate"]["means"]["delta_chrf"] > summary["providers"]["noop"]["means"]["delta_chrf"]
    html = (rep / "report.html").read_text()
    assert html.count("<svg") == 6 + 1 + 4  # histograms, the deltaChrF box plot, paired differences (4 metrics)
    scored = list(read_examples(rep / "scored.jsonl"))
    assert len(scored) == 12 and all(len(e.scores) == 2 for e in scored)
    # eval on already-predicted examples (no --provider) gives the same numbers
    rep2 = tmp_path / "rep2"
    result = runner.invoke(app, ["eval", str(rep / "scored.jsonl"), "--report", str(rep2), "-j", "1",
                                 "--resamples", "100"])
    assert result.exit_code == 0, result.output
    again = orjson.loads((rep2 / "summary.json").read_bytes())
    assert again["providers"] == summary["providers"]


def test_eval_counts_examples_that_cannot_be_scored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    broken = rename_example(99)
    broken.expected = ["@@ -1 +1 @@\n-not in the text\n+x\n"]
    rep = tmp_path / "rep"
    result = runner.invoke(app, ["eval", _write(tmp_path, [*dataset(2, 0, 0), broken]), "-p", "propagate",
                                 "--report", str(rep), "-j", "1", "--resamples", "50"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads((rep / "summary.json").read_bytes())
    assert summary["totals"]["failed_examples"] == 1
    assert summary["providers"]["propagate"]["counts"]["examples"] == 2
    assert "1 examples failed a stage" in result.output
    failed = [orjson.loads(line) for line in (rep / "scored.failed.jsonl").read_bytes().splitlines()]
    assert [f["id"] for f in failed] == ["rename-99"]


def test_eval_without_predictions_or_provider_says_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    result = runner.invoke(app, ["eval", _write(tmp_path, dataset(1, 0, 0)), "--report", str(tmp_path / "r"),
                                 "-j", "1"])
    assert result.exit_code == 1
    assert "pass --provider" in result.output


def test_predict_and_score_commands(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    src = _write(tmp_path, dataset(2, 1, 1))
    pred, scored = tmp_path / "pred.jsonl", tmp_path / "scored.jsonl"
    result = runner.invoke(app, ["predict", src, "--provider", "propagate", "-o", str(pred), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert [len(e.predictions) for e in read_examples(pred)] == [2, 2, 2, 2]
    result = runner.invoke(app, ["score", str(pred), "-o", str(scored), "-j", "1"])
    assert result.exit_code == 0, result.output
    first = next(iter(read_examples(scored)))
    assert [s.values["delta_chrf"] for s in first.scores] == [100.0, 100.0]
    result = runner.invoke(app, ["predict", src, "--provider", "oracle", "-o", str(pred)])
    assert result.exit_code == 2
    assert "unknown provider 'oracle'" in result.output


ZED_EVAL = '''+++
repository_url = "https://example.com/acme/shop"
revision = "0000000000000000000000000000000000000001"
+++

## Edit History

```diff
--- a/shop/cart.py
+++ b/shop/cart.py
@@ -10,3 +10,3 @@
-def total(items, rate):
+def total(items, tax):
     subtotal = sum(i.price for i in items)
     return subtotal * (1 + rate)
```

## Cursor Position

```shop/cart.py
def total(items, tax):
#                  ^[CURSOR_POSITION]
    subtotal = sum(i.price for i in items)
    return subtotal * (1 + rate)
```

## Expected Patch

```diff
--- a/shop/cart.py
+++ b/shop/cart.py
@@ -10,3 +10,3 @@
 def total(items, tax):
     subtotal = sum(i.price for i in items)
-    return subtotal * (1 + rate)
+    return subtotal * (1 + tax)
```
'''


def test_eval_reads_zed_markdown_evals(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "cache.sqlite"))
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "shop--finish-rename.md").write_text(ZED_EVAL)
    (evals / "README.md").write_text("# not an eval\n")
    rep = tmp_path / "rep"
    result = runner.invoke(app, ["eval", str(evals), "-p", "noop", "-p", "propagate", "--report", str(rep),
                                 "-j", "1", "--resamples", "50"])
    assert result.exit_code == 0, result.output
    summary = orjson.loads((rep / "summary.json").read_bytes())
    assert [r["id"] for r in summary["examples"]] == ["shop--finish-rename"] * 2
    assert summary["providers"]["propagate"]["means"]["delta_chrf"] == 100.0
    assert summary["providers"]["noop"]["means"]["delta_chrf"] == 0.0
    assert summary["by_language"]["propagate"]["python"]["counts"]["examples"] == 1
