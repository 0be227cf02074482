"""`nextedit format`: prompt/completion rows, failed file with reasons, knobs, tokenizer, Parquet and HF export."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.formats import FormatOptions, get_format
from nextedit.jsonl import read_dicts, write_examples
from nextedit.patch import apply, make
from nextedit.record import parse_example

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PATH = "src/calc.py"
TEXT = "".join(f"def add_{i}(a, b):\n    return a + b + {i}\n\n" for i in range(30))


def _example(i: int, **update) -> dict:
    new = TEXT.replace(f"return a + b + {i}\n", f"return a + b + {i} + 1\n")
    cursor = TEXT.index(f"return a + b + {i}\n")
    data = {"id": f"ex-{i}", "snapshot": {"path": PATH, "text": TEXT, "start_line": 0, "cursor": cursor,
                                          "history": [{"path": PATH, "diff": make(TEXT.replace("add_1(", "plus_1("),
                                                                                  TEXT, path=PATH)}],
                                          "diagnostics": [{"message": "shadowed name", "start_line": 3 * i,
                                                           "end_line": 3 * i}]},
            "expected": [make(TEXT, new, path=PATH)]}
    data.update(update)
    return data


def _marker_example() -> dict:
    """ex-6: a marker string in the file (escaped, not refused)."""
    data = _example(6)
    data["snapshot"]["text"] = TEXT + "# <|marker_1|>\n"
    return data


@pytest.fixture
def examples_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    rows = [_example(i) for i in range(5)]
    rows.append(_example(5, expected=[]))  # no expected patch
    rows.append(_marker_example())
    rows.append(_example(7, expected=[make("x = 1\n", "x = 2\n", path=PATH)]))  # does not apply
    write_examples(path, [parse_example(r) for r in rows])
    with open(path, "ab") as fh:
        fh.write(b'{"id": "broken", "snapshot": \n')
    return path


def _run(*args: str) -> object:
    result = CliRunner().invoke(app, ["format", *args])
    return result


def test_format_writes_rows_and_a_failed_file(examples_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    result = _run(str(examples_file), "--format", "seed-multi-region", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "6 rows (seed-multi-region v1)" in result.output and "3 refused" in result.output
    rows = [row for _, row in read_dicts(out)]
    assert [r["id"] for r in rows] == [f"ex-{i}" for i in (0, 1, 2, 3, 4, 6)]
    fmt = get_format("seed-multi-region")
    examples = [parse_example(d) for d in [*(_example(i) for i in range(5)), _marker_example()]]
    for row in rows:
        assert set(row) == {"id", "format", "format_version", "prompt", "completion"}
        assert row["format"] == "seed-multi-region" and row["format_version"] == "1"
        assert row["completion"].endswith("<[end▁of▁sentence]>")
        ex = next(e for e in examples if e.id == row["id"])
        got = apply(fmt.parse(row["completion"], ex).patch, ex.snapshot.text)
        assert got == apply(ex.expected[0], ex.snapshot.text)
    failed = {r["id"]: r for _, r in read_dicts(tmp_path / "train.failed.jsonl")}
    assert set(failed) == {"ex-5", "ex-7", None}
    assert "no expected patch" in failed["ex-5"]["reason"]
    assert "expected[0] does not apply" in failed["ex-7"]["reason"]
    assert failed[None]["line"] == 9 and "malformed JSON" in failed[None]["reason"]
    assert failed["ex-7"]["stage"] == "format:seed-multi-region" and failed["ex-7"]["record"]["id"] == "ex-7"


def test_empty_as_no_edit_and_knobs(examples_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    result = _run(str(examples_file), "-f", "zeta1", "-o", str(out), "--empty-as-no-edit", "--no-diagnostics",
                  "--history-events", "0", "--editable-tokens", "60", "--context-tokens", "0")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for _, r in read_dicts(out)}
    assert "ex-5" in rows and "+ 1" not in rows["ex-5"]["completion"]
    ex0 = parse_example(_example(0))
    opts = FormatOptions(diagnostics=False, history_events=0, editable_tokens=60, context_tokens=0)
    assert rows["ex-0"]["prompt"] == get_format("zeta1").render(ex0, opts).prompt
    assert "shadowed name" not in rows["ex-0"]["prompt"] and "plus_1" not in rows["ex-0"]["prompt"]
    default = tmp_path / "default.jsonl"
    assert _run(str(examples_file), "-f", "zeta1", "-o", str(default)).exit_code == 0
    first = next(r for _, r in read_dicts(default))
    assert "shadowed name" in first["prompt"] and "plus_1" in first["prompt"]


def test_tokenizer_file_sets_the_budgets(examples_file: Path, tmp_path: Path) -> None:
    vocab = {"[UNK]": 0}
    for word in TEXT.replace("(", " ").replace(")", " ").replace(",", " ").replace(":", " ").split():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok_path = tmp_path / "tokenizer.json"
    tok.save(str(tok_path))
    by_bytes, by_tokens = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    args = [str(examples_file), "-f", "sweep", "--editable-tokens", "40", "--context-tokens", "0"]
    assert _run(*args, "-o", str(by_bytes)).exit_code == 0
    assert _run(*args, "-o", str(by_tokens), "--tokenizer", str(tok_path)).exit_code == 0
    a = next(r for _, r in read_dicts(by_bytes))
    b = next(r for _, r in read_dicts(by_tokens))
    assert a["completion"] != b["completion"]  # the tokenizer counts "def add_0(a, b):" as 7 tokens, not 5
    ex0 = parse_example(_example(0))
    opts = FormatOptions(editable_tokens=40, context_tokens=0)
    assert b["prompt"] == get_format("sweep").render(ex0, opts, tokenizer=Tokenizer.from_file(str(tok_path))).prompt


def test_parquet_and_hf_dataset_export(examples_file: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    out, parquet, hf = tmp_path / "chat.jsonl", tmp_path / "chat.parquet", tmp_path / "chat-hf"
    result = _run(str(examples_file), "-f", "chat", "-o", str(out), "--parquet", str(parquet),
                  "--hf-dataset", str(hf))
    assert result.exit_code == 0, result.output
    rows = [r for _, r in read_dicts(out)]
    assert all(r["messages"][-1] == {"role": "assistant", "content": r["completion"]} for r in rows)
    table = pq.read_table(parquet).to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    assert table[0]["prompt"] == rows[0]["prompt"] and table[0]["messages"] == rows[0]["messages"]
    loaded = datasets.load_from_disk(str(hf))
    assert len(rows) == 6
    assert loaded["id"] == [r["id"] for r in rows] and loaded[2]["completion"] == rows[2]["completion"]
    # A format without messages leaves the column null.
    zeta = tmp_path / "z.jsonl"
    assert _run(str(examples_file), "-f", "zeta1", "-o", str(zeta), "--parquet", str(tmp_path / "z.pq")).exit_code == 0
    assert pq.read_table(tmp_path / "z.pq").column("messages").null_count == 6


def test_unknown_format_and_missing_input(examples_file: Path, tmp_path: Path) -> None:
    result = _run(str(examples_file), "-f", "nope", "-o", str(tmp_path / "x.jsonl"))
    assert result.exit_code == 1 and "unknown format 'nope'" in result.output
    result = _run(str(tmp_path / "missing.jsonl"), "-f", "zeta1", "-o", str(tmp_path / "y.jsonl"))
    assert result.exit_code == 1 and "missing.jsonl" in result.output
    assert not (tmp_path / "y.jsonl").exists()


def test_rows_are_plain_json(examples_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl.gz"
    assert _run(str(examples_file), "-f", "sweep", "-o", str(out)).exit_code == 0
    row = next(r for _, r in read_dicts(out))
    assert orjson.loads(orjson.dumps(row)) == row and row["completion"].endswith("<|endoftext|>")
