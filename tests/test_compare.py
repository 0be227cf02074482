"""`nextedit compare`: side-by-side runs and paired bootstrap intervals over shared example ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from eval_fixtures import dataset, predict_and_score
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.evaluate.compare import CompareError, compare, paired_difference
from nextedit.evaluate.summary import summarize_examples

runner = CliRunner()


def _summary_file(tmp_path, name: str, providers: tuple[str, ...], **sizes) -> str:
    summary = summarize_examples(predict_and_score(dataset(**sizes), providers=providers), resamples=100)
    path = tmp_path / f"{name}.json"
    path.write_bytes(orjson.dumps(summary))
    return str(path)


def test_paired_difference_of_shared_examples() -> None:
    a = {"x": 1.0, "y": 2.0, "z": 3.0, "only_a": 50.0}
    b = {"x": 2.0, "y": 4.0, "z": 3.0, "only_b": -9.0}
    d = paired_difference(a, b, resamples=200)
    assert d["shared_examples"] == 3
    assert d["difference"] == pytest.approx(1.0)
    assert d["mean_a"] == pytest.approx(2.0) and d["mean_b"] == pytest.approx(3.0)
    assert (d["run_higher"], d["run_lower"], d["ties"]) == (2, 0, 1)
    assert d["ci"][0] <= 1.0 <= d["ci"][1]
    assert paired_difference({"x": 1.0}, {"y": 1.0}) is None


def test_compare_two_files_pairs_examples_by_id(tmp_path) -> None:
    a = _summary_file(tmp_path, "a", ("noop",))
    b = _summary_file(tmp_path, "b", ("propagate",), n_rename=6, n_rust=4, n_quiet=0)
    result = compare([a, b], resamples=300)
    assert [r["label"] for r in result["runs"]] == ["noop", "propagate"]
    (diff,) = result["differences"]
    chrf = diff["metrics"]["delta_chrf"]
    assert chrf["shared_examples"] == 10  # the two no-edit examples are only in run a
    noop = orjson.loads(Path(a).read_bytes())
    by_id = {r["id"]: r["values"]["delta_chrf"] for r in noop["examples"]}
    prop = orjson.loads(Path(b).read_bytes())
    expected = np.mean([r["values"]["delta_chrf"] - by_id[r["id"]] for r in prop["examples"]])
    assert chrf["difference"] == pytest.approx(expected)
    assert chrf["run_higher"] == 6 and chrf["ties"] == 4
    assert chrf["significant"] and chrf["ci"][0] > 0
    assert result["signature_mismatches"] == []


def test_same_provider_in_two_files_gets_file_labels_and_a_chosen_baseline(tmp_path) -> None:
    a = _summary_file(tmp_path, "before", ("noop", "propagate"))
    b = _summary_file(tmp_path, "after", ("propagate",))
    result = compare([a, b], baseline="before:propagate", resamples=100)
    assert [r["label"] for r in result["runs"]] == ["noop", "before:propagate", "after:propagate"]
    assert result["baseline"] == "before:propagate"
    diffs = {d["run"]: d["metrics"]["delta_chrf"] for d in result["differences"]}
    assert diffs["after:propagate"]["difference"] == 0.0 and not diffs["after:propagate"]["significant"]
    assert diffs["noop"]["difference"] < 0


def test_mixed_metric_versions_are_flagged(tmp_path) -> None:
    a = _summary_file(tmp_path, "a", ("noop",))
    data = orjson.loads(Path(a).read_bytes())
    data["signatures"]["delta_chrf"] = "delta_chrf:v1|n=6|beta=2|ws=remove"
    b = tmp_path / "old.json"
    b.write_bytes(orjson.dumps(data))
    result = compare([a, str(b)], resamples=50)
    assert result["signature_mismatches"] == [
        "delta_chrf: delta_chrf:v1|n=6|beta=2|ws=remove vs delta_chrf:v3|n=6|beta=0.5|ws=collapse"]


def test_not_a_summary_is_a_one_line_error(tmp_path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(CompareError, match=r"x\.json: field format: not a nextedit evaluation summary"):
        compare([str(bad)])
    result = runner.invoke(app, ["compare", str(bad)])
    assert result.exit_code == 1 and "not a nextedit evaluation summary" in result.output


def test_compare_command_prints_tables_and_writes_json(tmp_path) -> None:
    a = _summary_file(tmp_path, "a", ("noop", "propagate"))
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", a, "-o", str(out), "--resamples", "100", "-m", "delta_chrf"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "paired differences vs noop" in result.output
    written = orjson.loads(out.read_bytes())
    assert list(written["differences"][0]["metrics"]) == ["delta_chrf"]
