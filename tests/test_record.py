"""Tests for the example record: validation errors, unknown fields, offsets, schema."""

import json

import pytest

from nextedit.record import Example, RecordError, json_schema, parse_example


def _record(**snapshot):
    snap = {"path": "a.py", "text": "def f(x):\n    return y\n", "cursor": 5}
    snap.update(snapshot)
    return {"id": "ex-1", "snapshot": snap}


def test_minimal_record_gets_defaults():
    ex = parse_example(_record())
    assert ex.snapshot.editable == (0, len(ex.snapshot.text))
    assert ex.expected == [] and ex.predictions == [] and ex.settled is None


def test_unknown_fields_round_trip():
    data = _record()
    data["custom"] = {"nested": [1, 2]}
    data["snapshot"]["extra_hint"] = "keep me"
    data["source"] = {"kind": "git", "stars": 5}
    out = parse_example(json.dumps(data)).to_dict()
    assert out["custom"] == {"nested": [1, 2]}
    assert out["snapshot"]["extra_hint"] == "keep me"
    assert out["source"]["stars"] == 5
    assert parse_example(out).to_dict() == out


def test_cursor_past_end_names_file_line_and_field():
    with pytest.raises(RecordError) as err:
        parse_example(_record(cursor=999), file="data.jsonl", line=7)
    msg = str(err.value)
    assert msg.startswith("data.jsonl:7: field snapshot:")
    assert "cursor 999" in msg and "\n" not in msg


def test_cursor_outside_editable_is_rejected():
    with pytest.raises(RecordError, match="outside editable"):
        parse_example(_record(cursor=1, editable=[3, 10]))


def test_editable_out_of_range_is_rejected():
    with pytest.raises(RecordError, match="not a range inside text"):
        parse_example(_record(editable=[5, 500]))


def test_wrong_type_names_nested_field():
    data = _record()
    data["snapshot"]["history"] = [{"path": "a.py", "diff": 3}]
    with pytest.raises(RecordError) as err:
        parse_example(data, file="f.jsonl", line=2)
    assert "field snapshot.history[0].diff" in str(err.value)


def test_missing_id_and_malformed_json():
    with pytest.raises(RecordError, match="field id"):
        parse_example({"snapshot": _record()["snapshot"]})
    with pytest.raises(RecordError, match="f.jsonl:3: malformed JSON"):
        parse_example(b"{not json", file="f.jsonl", line=3)


def test_expected_cursors_must_align():
    data = _record()
    data["expected"] = ["--- a/a.py\n+++ b/a.py\n"]
    data["expected_cursors"] = [1, 2]
    with pytest.raises(RecordError, match="expected_cursors"):
        parse_example(data)


def test_schema_is_exported_and_current(tmp_path):
    schema = json_schema()
    assert schema["title"] == "nextedit example"
    assert "snapshot" in schema["required"]
    from pathlib import Path

    on_disk = json.loads((Path(__file__).parents[1] / "docs" / "schema.json").read_text())
    assert on_disk == json.loads(json.dumps(schema)), "docs/schema.json is stale: run `nextedit schema -o docs/schema.json`"


def test_example_model_is_constructible_in_python():
    ex = Example(id="x", snapshot={"path": "p.rs", "text": "fn main() {}", "cursor": 0})
    assert parse_example(ex.to_json()).to_dict() == ex.to_dict()
