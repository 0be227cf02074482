"""Tests for `nextedit stats`: counts, languages, size percentiles, sources, labels, predictions."""

from __future__ import annotations

import json

import numpy as np
from dataset_fixtures import make_example, write_jsonl
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.dataset.stats import distribution

runner = CliRunner()


def _examples():
    exs = []
    # 3 python examples in repo A with a one-line change (2 changed lines each)
    for i in range(3):
        text = f"def f{i}(x):\n    return x + {i}\n" + "# pad\n" * i
        exs.append(make_example(f"py-{i}", text=text, path=f"a/m{i}.py", repo="https://x/a",
                                time=f"2026-01-0{i + 1}T00:00:00Z",
                                new_text=text.replace(f"x + {i}", f"x - {i}")))
    # 2 rust examples in repo B, no expected edit, with predictions
    for i in range(2):
        exs.append(make_example(
            f"rs-{i}", text=f"fn main() {{ let v = {i}; }}\n", path="src/main.rs", repo="https://x/b",
            kind="zed",
            predictions=[{"provider": "teacher:t", "patch": "", "latency_ms": 100.0 * (i + 1),
                          "usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01}},
                         {"provider": "student:s", "error": "timeout"}],
            checks=[{"prediction": 0, "code": "empty", "passed": i == 0}],
            scores=[{"prediction": 0, "values": {"delta_chrf": 0.5 + i / 4, "no_edit_predicted": True}}]))
    # 1 markdown-less unknown file without repo and a two-line replacement (4 changed lines)
    text = "alpha\nbeta\ngamma\n"
    exs.append(make_example("other-0", text=text, path="notes.xyz", new_text="ALPHA\nBETA\ngamma\n"))
    return exs


def test_json_counts_languages_sizes_sources(tmp_path):
    exs = _examples()
    f = write_jsonl(tmp_path / "d.jsonl", exs)
    result = runner.invoke(app, ["stats", str(f), "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["examples"] == 6
    assert s["languages"] == {"python": 3, "rust": 2, "other": 1}
    text_chars = [len(e.snapshot.text) for e in exs]
    assert s["sizes"]["text_chars"]["p50"] == float(np.percentile(text_chars, 50))
    assert s["sizes"]["text_chars"]["max"] == max(text_chars)
    assert s["sizes"]["editable_chars"]["max"] == max(text_chars)  # editable defaults to the whole text
    changed = s["sizes"]["expected_changed_lines"]
    assert changed["count"] == 4 and changed["min"] == 2 and changed["max"] == 4
    assert s["sources"]["kinds"] == {"git": 4, "zed": 2}
    assert s["sources"]["repos"]["distinct"] == 2 and s["sources"]["repos"]["without_repo"] == 1
    assert s["sources"]["repos"]["top"][0] == ["https://x/a", 3]
    assert s["sources"]["time"] == {"oldest": "2026-01-01T00:00:00Z", "newest": "2026-01-03T00:00:00Z",
                                    "without_time": 3}
    assert s["labels"]["with_expected"] == 4 and s["labels"]["without_expected"] == 2
    assert s["labels"]["alternatives"] == {"1": 4}


def test_json_predictions_checks_scores(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", _examples())
    s = json.loads(runner.invoke(app, ["stats", str(f), "--json"]).output)
    preds = s["predictions"]
    assert preds["examples_with_predictions"] == 2
    teacher, student = preds["providers"]["teacher:t"], preds["providers"]["student:s"]
    assert teacher["predictions"] == 2 and teacher["errors"] == 0 and teacher["empty_patches"] == 2
    assert teacher["latency_ms"]["p50"] == 150 and teacher["cost_usd"] == 0.02
    assert student["errors"] == 2 and student["latency_ms"]["count"] == 0
    assert s["checks"] == {"empty": {"passed": 1, "failed": 1}}
    assert s["scores"]["teacher:t"]["scored"] == 2
    assert s["scores"]["teacher:t"]["means"] == {"delta_chrf": 0.625}  # booleans are not averaged


def test_table_output_and_top(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", _examples())
    result = runner.invoke(app, ["stats", str(f), "--top", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "6 examples" in out
    for word in ("python", "rust", "text_chars", "expected_changed_lines", "teacher:t", "https://x/a"):
        assert word in out
    assert "https://x/b" not in out  # --top 1 lists only the biggest repository


def test_bad_line_is_reported_with_file_and_line_and_skipped(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [make_example("a"), "{not json"])
    result = runner.invoke(app, ["stats", str(f)])
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # the warning may wrap
    assert "1 bad lines skipped" in text and f"{f}:2:" in text and "malformed JSON" in text


def test_distribution_of_empty_and_values():
    assert distribution([])["p50"] is None
    d = distribution([1, 2, 3, 4])
    assert (d["count"], d["min"], d["max"], d["mean"]) == (4, 1, 4, 2.5)
    assert d["p90"] == float(np.percentile([1, 2, 3, 4], 90))
