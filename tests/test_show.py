"""Tests for `nextedit show`: selection, cursor and editable markers, patches, predictions, errors."""

from __future__ import annotations

from dataset_fixtures import make_example, write_jsonl
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.dataset.show import (
    CURSOR_MARKER,
    EDITABLE_END_MARKER,
    EDITABLE_START_MARKER,
    mark_excerpt,
)
from nextedit.record import Example

runner = CliRunner()

TEXT = "import os\n\ndef restock(item, qty):\n    item.count += amount\n    log(item)\n\nprint(1)\n"
NEW = TEXT.replace("+= amount", "+= qty")


def _rich_example():
    cursor, start, end = TEXT.index("amount"), TEXT.index("def"), TEXT.index("\n\nprint")
    data = make_example(
        "rich-1", text=TEXT, path="inv/stock.py", repo="https://github.com/acme/inv", cursor=cursor,
        editable=(start, end), new_text=NEW,
        predictions=[
            {"provider": "teacher:fake-model", "latency_ms": 812,
             "patch": "@@ -14,1 +14,1 @@\n-    item.count += amount\n+    item.count += qty\n",
             "usage": {"input_tokens": 1900, "output_tokens": 140, "cost_usd": 0.0078}},
            {"provider": "baseline:broken", "error": "HTTP 503 from server"},
        ],
        checks=[{"prediction": 0, "code": "reversal", "passed": False, "message": "undoes history"}],
        scores=[{"prediction": 0, "reference": 0, "values": {"delta_chrf": 0.91},
                 "signatures": {"delta_chrf": "delta_chrf:v3|n=6|beta=0.5|ws=collapse"}}],
        custom_field={"kept": True},
    ).to_dict()
    data["snapshot"]["start_line"] = 10
    data["snapshot"]["history"] = [
        {"path": "inv/stock.py", "diff": "@@ -13,1 +13,1 @@\n-def restock(item, amount):\n+def restock(item, qty):\n"}]
    return Example.model_validate(data)


def test_plain_output_marks_cursor_region_and_shows_patches(tmp_path):
    ex = _rich_example()
    f = write_jsonl(tmp_path / "a.jsonl", [ex])
    result = runner.invoke(app, ["show", str(f)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b[" not in out  # not a terminal: no colour codes
    lines = out.splitlines()
    # file line numbers count from start_line (10): the cursor is on file line 14
    assert "14 |     item.count += " + CURSOR_MARKER + "amount" in lines
    assert "13 | " + EDITABLE_START_MARKER + "def restock(item, qty):" in lines
    assert "15 |     log(item)" + EDITABLE_END_MARKER in lines
    assert "-def restock(item, amount):" in lines  # history diff
    assert "+    item.count += qty" in lines  # expected / predicted patch
    assert "-    item.count += amount" in lines
    assert any("teacher:fake-model" in line and "812 ms" in line for line in lines)
    assert "error: HTTP 503 from server" in lines
    assert "FAIL prediction 0 reversal: undoes history" in lines
    assert any("delta_chrf=0.91" in line for line in lines)
    assert "  delta_chrf: delta_chrf:v3|n=6|beta=0.5|ws=collapse" in lines
    assert "extra fields: custom_field" in lines


def test_colour_output_has_ansi_codes_and_marker(tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [_rich_example()])
    result = runner.invoke(app, ["show", str(f), "--color"])
    assert result.exit_code == 0, result.output
    assert "\x1b[" in result.output
    assert CURSOR_MARKER in result.output


def test_selects_by_id_and_index_default_first(tmp_path):
    exs = [make_example(f"ex-{i}", text=f"value_{i} = {i}\n", cursor=0) for i in range(3)]
    f = write_jsonl(tmp_path / "a.jsonl", exs)
    assert "id: ex-0" in runner.invoke(app, ["show", str(f)]).output
    assert "id: ex-2" in runner.invoke(app, ["show", str(f), "--id", "ex-2"]).output
    out = runner.invoke(app, ["show", str(f), "--index", "1"]).output
    assert "id: ex-1" in out and "value_1" in out and "value_0" not in out
    missing = runner.invoke(app, ["show", str(f), "--id", "nope"])
    assert missing.exit_code == 1 and "no example with id 'nope'" in missing.output
    beyond = runner.invoke(app, ["show", str(f), "--index", "7"])
    assert beyond.exit_code == 1 and "has 3 examples" in beyond.output


def test_no_expected_and_whole_region_have_no_region_markers(tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [make_example("e", text="x = 1\ny = 2\n", cursor=6)])
    out = runner.invoke(app, ["show", str(f)]).output
    assert "2 | " + CURSOR_MARKER + "y = 2" in out.splitlines()
    assert EDITABLE_START_MARKER not in out.split("==", 4)[-1]  # not in the excerpt
    assert "editable: whole excerpt" in out
    assert "no expected patch" in out


def test_around_crops_far_lines(tmp_path):
    text = "".join(f"line_{i} = {i}\n" for i in range(50))
    cursor = text.index("line_25")
    f = write_jsonl(tmp_path / "a.jsonl", [make_example("e", text=text, cursor=cursor,
                                                         editable=(cursor, text.index("line_27")))])
    out = runner.invoke(app, ["show", str(f), "--around", "2"]).output
    assert "line_23 = 23" in out and "line_22 = 22" not in out
    assert "line_29 = 29" in out and "line_30 = 30" not in out
    assert "... 23 lines above" in out and "... 20 lines below" in out
    assert "26 | " + EDITABLE_START_MARKER + CURSOR_MARKER + "line_25 = 25" in out.splitlines()


def test_bad_line_error_names_file_line_and_field(tmp_path):
    good = make_example("ok", text="a = 1\n").to_dict()
    bad = make_example("bad", text="a = 1\n").to_dict()
    bad["snapshot"]["cursor"] = 999
    f = write_jsonl(tmp_path / "a.jsonl", [good, bad])
    result = runner.invoke(app, ["show", str(f), "--index", "1"])
    assert result.exit_code == 1
    assert f"{f}:2: field snapshot" in result.output and "cursor 999" in result.output


def test_mark_excerpt_orders_markers_at_same_offset():
    marked, marks = mark_excerpt("abc", 0, (0, 0), whole_region=False)
    assert marked == EDITABLE_START_MARKER + CURSOR_MARKER + EDITABLE_END_MARKER + "abc"
    kinds = [k for _, _, k in marks]
    assert kinds == ["editable", "marker", "cursor", "marker"]
    for start, end, kind in marks:
        if kind == "cursor":
            assert marked[start:end] == CURSOR_MARKER
