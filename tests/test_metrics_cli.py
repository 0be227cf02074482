"""`nextedit metrics diff|signatures` on real files."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from nextedit import patch as P
from nextedit.cli import app
from nextedit.metrics import SIGNATURES

TEXT = "def f(x):\n    return x + 1\n"


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    base = tmp_path / "f.py"
    base.write_text(TEXT)
    exp, act = tmp_path / "e.diff", tmp_path / "a.diff"
    exp.write_text(P.make(TEXT, TEXT.replace("1", "2"), path="f.py"))
    act.write_text(P.make(TEXT, TEXT.replace("1", "3"), path="f.py"))
    return base, exp, act


def test_diff_json(tmp_path: Path) -> None:
    base, exp, act = _files(tmp_path)
    args = ["metrics", "diff", "--base", str(base), "--expected-patch", str(exp), "--actual-patch", str(act), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.output)
    assert out["values"]["delta_chrf"] == 50.0 and out["values"]["exact_lines_f1"] == 0.5
    assert out["signatures"]["delta_chrf"] == SIGNATURES["delta_chrf"]
    v1 = orjson.loads(CliRunner().invoke(app, [*args, "--variant", "v1"]).output)
    assert v1["signatures"]["delta_chrf"].startswith("delta_chrf:v1|")


def test_diff_table_and_no_expected(tmp_path: Path) -> None:
    base, _exp, act = _files(tmp_path)
    result = CliRunner().invoke(app, ["metrics", "diff", "--base", str(base), "--actual-patch", str(act)])
    assert result.exit_code == 0, result.output
    assert "no_edit_expected" in result.output and "delta_chrf:v3" in result.output


def test_diff_bad_expected_patch_is_a_one_line_error(tmp_path: Path) -> None:
    base, _exp, act = _files(tmp_path)
    result = CliRunner().invoke(app, ["metrics", "diff", "--base", str(base), "--expected-patch", str(base),
                                      "--actual-patch", str(act)])
    assert result.exit_code == 1
    assert "field expected[0]" in result.output


def test_signatures(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["metrics", "signatures", "--json"])
    assert result.exit_code == 0 and orjson.loads(result.output) == SIGNATURES
    text = CliRunner().invoke(app, ["metrics", "signatures", "--variant", "v1"]).output
    assert "delta_chrf:v1|n=6|beta=2|ws=remove" in text
    assert CliRunner().invoke(app, ["metrics", "signatures", "--variant", "v7"]).exit_code != 0
