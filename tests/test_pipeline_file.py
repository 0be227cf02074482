"""Tests for pipeline TOML files: stages in order, reuse of up-to-date outputs, config errors, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.jsonl import iter_lines
from nextedit.pipeline import ConfigError
from nextedit.pipeline.pipeline_file import run_pipeline

PIPELINE = """
input = "data/in.jsonl"
cache = "cache.sqlite"

[[stage]]
name = "validate"
output = "work/valid.jsonl"

[[stage]]
name = "runner_stages:Tag"
output = "work/tagged.jsonl"
config = {{ tag = "{tag}", drop_every = 4 }}
"""


def record(i: int) -> dict:
    return {"id": f"ex-{i}", "snapshot": {"path": "m.py", "text": f"x = {i}\n", "cursor": 0}}


def setup(tmp_path: Path, n: int = 12, tag: str = "t1") -> Path:
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "in.jsonl", "wb") as fh:
        fh.writelines(orjson.dumps(record(i)) + b"\n" for i in range(n))
        fh.write(b"this line is broken\n")
    path = tmp_path / "pipe.toml"
    path.write_text(PIPELINE.format(tag=tag))
    return path


def run(path: Path, **kw) -> tuple[list, list[str]]:
    seen: list[str] = []
    summaries = run_pipeline(path, progress=False, on_stage=lambda i, s, status: seen.append(status), **kw)
    return summaries, seen


def test_stages_run_in_order_then_are_reused(tmp_path: Path) -> None:
    path = setup(tmp_path)
    summaries, seen = run(path)
    assert seen == ["running", "running"]
    assert summaries[0].failed == 1 and summaries[0].written == 12
    tagged = [orjson.loads(r) for _, r in iter_lines(tmp_path / "work" / "tagged.jsonl")]
    assert [r["id"] for r in tagged] == [f"ex-{i}" for i in range(12) if i % 4]
    assert [e["stage"] for e in tagged[0]["lineage"]] == ["validate", "tag"]
    assert (tmp_path / "cache.sqlite").exists()  # relative to the pipeline file, not the cwd

    summaries, seen = run(path)
    assert seen == ["reused", "reused"]
    assert summaries[1].reused and summaries[1].dropped == 3

    # same content, new mtime: still up to date (content hash)
    os.utime(tmp_path / "data" / "in.jsonl", ns=(1, 1))
    assert run(path)[1] == ["reused", "reused"]

    # a config change reruns only that stage
    path.write_text(PIPELINE.format(tag="t2"))
    assert run(path)[1] == ["reused", "running"]

    # new input content reruns everything; the later stage hits the cache for unchanged records
    with open(tmp_path / "data" / "in.jsonl", "ab") as fh:
        fh.write(orjson.dumps(record(100)) + b"\n")
    summaries, seen = run(path)
    assert seen == ["running", "running"]
    assert summaries[1].from_cache == 12 and summaries[1].stats == {"calls": 1}
    assert (summaries[1].written, summaries[1].dropped) == (9, 4)  # record 100 is dropped (100 % 4 == 0)

    # a hand-edited output is not trusted
    with open(tmp_path / "work" / "tagged.jsonl", "ab") as fh:
        fh.write(b"\n")
    assert run(path)[1] == ["reused", "running"]
    assert run(path, force=True)[1] == ["running", "running"]


@pytest.mark.parametrize(("text", "message"), [
    ('input = "in.jsonl"\n[[stage]]\nname = "validate"\n', r"pipe\.toml: field stage\[0\]\.output: Field required"),
    ('input = "in.jsonl"\n[[stage]]\nname = "nope"\noutput = "o.jsonl"\n', r"field stage\[0\]\.name: unknown stage 'nope'"),
    ('input = "in.jsonl"\n[[stage]]\nname = "validate"\noutput = "o.jsonl"\nconfig = {dedupe = 1}\n',
     r"pipe\.toml: stage\[0\] \(validate\) config: field dedupe: unknown option"),
    ('input = "in.jsonl"\n[[stage]]\nname = "validate"\noutput = "o.jsonl"\nconfig = {max_text_chars = 0}\n',
     r"field max_text_chars: Input should be greater than or equal to 1"),
    ('input = "in.jsonl"\nstage = [\n', r"pipe\.toml: invalid TOML"),
    ('input = "in.jsonl"\nstages = []\n', r"pipe\.toml: field stage: Field required"),
])
def test_config_errors_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipe.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        run_pipeline(path, progress=False)


def test_cli_run_and_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEXTEDIT_CACHE", str(tmp_path / "env-cache.sqlite"))
    runner = CliRunner()
    result = runner.invoke(app, ["run", "validate", "data/in.jsonl", "-o", "out.jsonl", "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.jsonl").exists() and (tmp_path / "out.failed.jsonl").exists()
    (tmp_path / "bad.toml").write_text("check_history = 3.5\n")
    result = runner.invoke(app, ["run", "validate", "data/in.jsonl", "-o", "o2.jsonl", "--config", "bad.toml"])
    assert result.exit_code == 2
    assert "bad.toml: field check_history: Input should be a valid boolean" in result.output
    result = runner.invoke(app, ["run", "runner_stages:Tag", "data/in.jsonl", "-o", "t.jsonl"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env-cache.sqlite").exists()  # NEXTEDIT_CACHE picked the cache file
    result = runner.invoke(app, ["cache"])
    assert result.exit_code == 0 and " tag " in result.output and "12 results" in result.output
    result = runner.invoke(app, ["cache", "--clear", "--stage", "tag"])
    assert "deleted 12 results" in result.output
    result = runner.invoke(app, ["pipeline", str(path)])
    assert result.exit_code == 0, result.output
    assert "[2] runner_stages:Tag -> work/tagged.jsonl: running" in result.output
    result = runner.invoke(app, ["stages"])
    assert "validate" in result.output
