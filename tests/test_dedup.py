"""Tests for `nextedit dedup`: exact and MinHash near-duplicates, diversity, reference sets, order."""

from __future__ import annotations

import orjson
from dataset_fixtures import change_lines, make_example, random_code, write_jsonl
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.dataset.dedup import (
    DedupConfig,
    diverse_subset,
    exact_key,
    plan_dedup,
    shingle_hashes,
    tokenize,
)

runner = CliRunner()


def _ids(path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def _ex(example_id: str, text: str, **kw):
    return make_example(example_id, text=text, cursor=kw.pop("cursor", text.index("\n", len(text) // 2) + 1), **kw)


def test_tokens_drop_whitespace_and_keep_cursor_marker():
    assert tokenize("a.b(c,  d)\n\t<|user_cursor|>x_1 += 2") == [
        "a", ".", "b", "(", "c", ",", "d", ")", "<|user_cursor|>", "x_1", "+", "=", "2"]
    seven = shingle_hashes(list("abcdefg"), 5)
    assert len(set(seven.tolist())) == 3  # three distinct 5-grams
    assert shingle_hashes(list("abcde"), 5).tolist() == seven[:1].tolist()
    assert shingle_hashes(list("cdefg"), 5).tolist() == seven[2:].tolist()
    assert shingle_hashes(list("edcba"), 5).tolist() != seven[:1].tolist()  # order matters
    assert len(shingle_hashes(["a", "b"], 5)) == 1  # fewer tokens than n: one shingle
    assert int(seven.max()) < 2**32


def test_exact_key_normalises_whitespace_but_not_content():
    a = _ex("a", "x = 1\ny = 2\n", cursor=6)
    assert exact_key(a) == exact_key(_ex("b", "x = 1   \r\ny = 2\n\n", cursor=10))
    assert exact_key(a) != exact_key(_ex("c", "x = 1\ny = 2\n", cursor=0))  # other cursor
    edited = _ex("d", "x = 1\ny = 2\n", cursor=6, new_text="x = 1\ny = 3\n")
    assert exact_key(a) != exact_key(edited)  # other expected edit
    elsewhere = _ex("e", "x = 1\ny = 2\n", cursor=6, new_text="x = 1\ny = 3\n", path="other/place.py")
    assert "other/place.py" in elsewhere.expected[0]
    assert exact_key(edited) == exact_key(elsewhere)  # the file path is not part of the key


def test_exact_and_near_duplicates_removed_distinct_kept_in_order(tmp_path):
    base = [random_code(seed) for seed in range(6)]
    exs = [
        _ex("d0", base[0]),
        _ex("d1", base[1]),
        _ex("d0-copy", base[0]),                                  # exact duplicate of d0
        _ex("d2", base[2]),
        _ex("d1-near", change_lines(base[1], range(20, 21))),     # one line changed: near-duplicate of d1
        _ex("d3", base[3]),
        _ex("d4", base[4]),
        _ex("d5", base[5]),
    ]
    src = write_jsonl(tmp_path / "in.jsonl", exs)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["dedup", str(src), "-o", str(out), "--dropped", str(tmp_path / "dropped.jsonl")])
    assert result.exit_code == 0, result.output
    assert _ids(out) == ["d0", "d1", "d2", "d3", "d4", "d5"]
    assert "8 examples: kept 6, removed 1 exact duplicates and 1 near-duplicates (1 clusters" in result.output
    dropped = {r["id"]: r for r in map(orjson.loads, (tmp_path / "dropped.jsonl").read_bytes().splitlines())}
    assert dropped["d0-copy"]["reason"] == "exact" and dropped["d0-copy"]["duplicate_of"] == "d0"
    assert dropped["d0-copy"]["line"] == 3
    assert dropped["d1-near"]["reason"] == "near" and dropped["d1-near"]["duplicate_of"] == "d1"
    assert 0.5 <= dropped["d1-near"]["similarity"] < 1
    # kept lines are the input lines, unchanged
    assert set(out.read_bytes().splitlines()) <= set(src.read_bytes().splitlines())


def test_threshold_controls_what_counts_as_near(tmp_path):
    base = random_code(1)
    exs = [_ex("a", base), _ex("b", change_lines(base, range(18, 23)))]  # five of forty lines differ
    keep, summary = plan_dedup(exs, DedupConfig(threshold=0.5))
    assert list(keep) == [1, 0] and summary.near_removed == 1
    keep, summary = plan_dedup(exs, DedupConfig(threshold=0.95))
    assert list(keep) == [1, 1] and summary.near_clusters == 0


def test_window_lines_limits_comparison_to_text_near_cursor():
    base = random_code(2, lines=80)
    far_changed = change_lines(base, range(30))  # the first 30 lines differ, the cursor sits at line 60
    cursor = len("".join(base.splitlines(keepends=True)[:60]))
    exs = [_ex("a", base, cursor=cursor), _ex("b", far_changed, cursor=cursor)]
    assert list(plan_dedup(exs, DedupConfig(window_lines=10))[0]) == [1, 0]
    assert list(plan_dedup(exs, DedupConfig(window_lines=0, threshold=0.7))[0]) == [1, 1]


def test_max_duplicates_keeps_the_most_diverse_members(tmp_path):
    base = random_code(3)
    exs = [
        _ex("a", base),
        _ex("a-tiny", change_lines(base, range(5, 6), seed=1)),      # very close to a
        _ex("a-more", change_lines(base, range(30, 36), seed=2)),    # further from a, still similar
        _ex("other", random_code(4)),
    ]
    src = write_jsonl(tmp_path / "in.jsonl", exs)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["dedup", str(src), "-o", str(out), "--max-duplicates", "2"])
    assert result.exit_code == 0, result.output
    assert _ids(out) == ["a", "a-more", "other"]
    result = runner.invoke(app, ["dedup", str(src), "-o", str(out), "--max-duplicates", "3"])
    assert _ids(out) == ["a", "a-tiny", "a-more", "other"]


def test_diverse_subset_is_greedy_max_min():
    import numpy as np

    sigs = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=np.uint32)
    assert diverse_subset(sigs, 2) == [0, 3]
    assert diverse_subset(sigs, 3) == [0, 3, 2]  # row 2 is 0.5 from both chosen, row 1 only 0.25


def test_against_removes_examples_found_in_reference(tmp_path):
    codes = [random_code(s) for s in range(10, 14)]
    ref = write_jsonl(tmp_path / "test.jsonl", [_ex("t0", codes[0]), _ex("t1", codes[1])])
    src = write_jsonl(tmp_path / "train.jsonl", [
        _ex("x0", codes[0]), _ex("x1-near", change_lines(codes[1], range(3, 4))),
        _ex("x2", codes[2]), _ex("x3", codes[3])])
    out = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["dedup", str(src), "-o", str(out), "--against", str(ref)])
    assert result.exit_code == 0, result.output
    assert _ids(out) == ["x2", "x3"]
    assert f"2 found in {ref}" in result.output


def test_bad_line_names_file_and_line_and_keeps_old_output(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [make_example("a"), {"id": "b", "snapshot": {"path": "x.py"}}])
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    result = runner.invoke(app, ["dedup", str(src), "-o", str(out)])
    assert result.exit_code == 1
    assert f"{src}:2: field snapshot.text" in result.output
    assert out.read_text() == "previous\n"


def test_refuses_to_overwrite_input(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [make_example("a")])
    result = runner.invoke(app, ["dedup", str(src), "-o", str(src)])
    assert result.exit_code == 1 and "overwrite" in result.output
