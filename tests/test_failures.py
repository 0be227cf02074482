"""Every failure says what and where and loses nothing: damaged inputs, configuration that cannot work,
duplicate ids, bad lines, runs whose every example failed, killed writers; plus the newcomer's
conveniences (plain tables when piped, show --diff, eval --worst)."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from dataset_fixtures import make_example, write_jsonl
from eval_fixtures import dataset
from rich.console import Console
from rich.table import Table
from runner_stages import Tag
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.jsonl import failed_path
from nextedit.pipeline import run_stage
from nextedit.pipeline.engine import sidecar_paths

runner = CliRunner()
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _examples(n: int, **kw) -> list:
    return [make_example(f"ex-{i}", text=f"def f{i}(x):\n    return x + {i}\n",
                         new_text=f"def f{i}(x):\n    return x + {i + 1}\n", **kw) for i in range(n)]


def _read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _err(result) -> str:
    return result.stderr if result.stderr_bytes is not None else result.output


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if p.name.endswith((".partial", ".checkpoint.json", ".tmp")))


# -- damaged compressed input ----------------------------------------------------------------------

def _truncated_gz(tmp_path: Path, n: int = 400) -> Path:
    src = write_jsonl(tmp_path / "all.jsonl", _examples(n))
    data = gzip.compress(src.read_bytes(), compresslevel=1)
    bad = tmp_path / "cut.jsonl.gz"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def test_truncated_gz_names_file_and_offset_keeps_good_records_and_leaves_nothing(tmp_path):
    bad = _truncated_gz(tmp_path)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["run", "validate", str(bad), "-o", str(out), "--no-cache"])
    assert result.exit_code == 1
    err = _err(result)
    assert "Aborted" not in err and "Traceback" not in err
    assert "cut.jsonl.gz" in err and "byte" in err and "damaged gzip" in err
    good = _read(out)
    assert 0 < len(good) < 400
    assert [r["id"] for r in good] == [f"ex-{i}" for i in range(len(good))]  # every record before the damage
    failed = _read(tmp_path / "out.failed.jsonl")
    assert failed[-1]["line"] == len(good) + 1 and "damaged gzip" in failed[-1]["reason"]
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "out.jsonl.manifest.json").exists()  # a pipeline must not reuse it


def test_truncated_gz_is_one_line_for_readers_too(tmp_path):
    bad = _truncated_gz(tmp_path)
    result = runner.invoke(app, ["stats", str(bad)])
    assert result.exit_code == 1
    assert "cut.jsonl.gz" in _err(result) and "damaged gzip" in _err(result)


# -- configuration that cannot work: exit 2, one line, nothing written ----------------------------

@pytest.mark.parametrize("args", [
    ["teacher", "{src}", "-o", "{out}", "--provider", "foo:bar"],
    ["predict", "{src}", "-o", "{out}", "--provider", "teacher:foo:bar"],
    ["teacher", "{src}", "-o", "{out}", "--provider", "anthropic:claude-sonnet-4-6"],  # no API key
    ["predict", "{src}", "-o", "{out}", "--provider", "teacher:openai:gpt-4o"],  # no API key
    ["format", "{src}", "-f", "zeta1", "-o", "{src}"],
    ["run", "validate", "{src}", "-o", "{src}"],
    ["report", "production", "--store", "{src}"],  # not a database
    ["report", "production", "--store", "{src}", "--since", "notadate"],
    ["report", "production", "--since", "2026-11-01"],  # no store here and no config
])
def test_config_that_cannot_work_fails_first_with_exit_2(tmp_path, monkeypatch, args):
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    src = write_jsonl(tmp_path / "in.jsonl", _examples(3))
    before = src.read_bytes()
    out = tmp_path / "out.jsonl"
    argv = [a.format(src=src, out=out) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = [x for x in _err(result).splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error"), lines
    assert "Traceback" not in result.output
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no work done, nothing written


def test_serve_refuses_a_port_that_is_not_one(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(f'store = "{tmp_path}/ev.db"\n[[arms]]\nname = "a"\nbackend = "noop"\n')
    result = runner.invoke(app, ["serve", str(config), "--port", "99999"])
    assert result.exit_code == 2
    assert _err(result).strip() == "error --port 99999: not a TCP port (0-65535; 0 picks a free one)"
    assert not (tmp_path / "ev.db").exists()


def test_report_production_finds_serves_default_store(tmp_path, monkeypatch):
    from nextedit.serve.store import SQLiteStore

    monkeypatch.chdir(tmp_path)
    SQLiteStore(tmp_path / "nextedit-events.db")
    result = runner.invoke(app, ["report", "production", "--since", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert "0 events" in result.output


def test_serve_store_resolves_against_the_config_file(tmp_path):
    from nextedit.serve.config import load_config

    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "serve.toml").write_text('store = "ev.db"\n[[arms]]\nname = "a"\nbackend = "noop"\n')
    assert load_config(sub / "serve.toml").store == str(sub / "ev.db")
    (sub / "abs.toml").write_text(f'store = "sqlite:///{tmp_path}/x.db"\n[[arms]]\nname = "a"\nbackend = "noop"\n')
    assert load_config(sub / "abs.toml").store == f"sqlite:///{tmp_path}/x.db"


# -- duplicate ids, splits, bad lines --------------------------------------------------------------

def test_validate_reports_duplicate_ids(tmp_path):
    exs = _examples(4)
    src = write_jsonl(tmp_path / "in.jsonl", [*exs, exs[1]])
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["run", "validate", str(src), "-o", str(out), "--no-cache"])
    assert result.exit_code == 0
    assert [r["id"] for r in _read(out)] == ["ex-0", "ex-1", "ex-2", "ex-3"]
    (failed,) = _read(tmp_path / "out.failed.jsonl")
    assert failed["line"] == 5 and "duplicate id 'ex-1' (first at line 2)" in failed["reason"]
    assert "duplicate_id=1" in _err(result)


class _UniqueTag(Tag):
    """Tag whose output ids the runner checks (a repeated id is quarantined)."""

    name = "unique-tag"

    def duplicate_ids(self):
        return "fail"


def test_duplicate_ids_are_caught_across_a_resumed_run(tmp_path, monkeypatch):
    exs = _examples(40)
    src = write_jsonl(tmp_path / "in.jsonl", [*exs, exs[3], exs[35]])
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("RUNNER_TEST_INTERRUPT_AT", "30")
    with pytest.raises(KeyboardInterrupt):
        run_stage(_UniqueTag({}), src, out, cache=False, concurrency=1, progress=False, checkpoint_every=0.0)
    assert sidecar_paths(out)["checkpoint"].exists()
    monkeypatch.delenv("RUNNER_TEST_INTERRUPT_AT")
    summary = run_stage(_UniqueTag({}), src, out, cache=False, concurrency=1, progress=False)
    assert summary.resumed > 0
    assert [r["id"] for r in _read(out)] == [f"ex-{i}" for i in range(40)]
    failed = _read(failed_path(out))
    assert [f["line"] for f in failed] == [41, 42]
    assert "duplicate id 'ex-3' (written before the run was resumed)" in failed[0]["reason"]
    assert "duplicate id 'ex-35' (first at line 36)" in failed[1]["reason"]
    assert summary.stats["duplicate_id"] == 2 and (summary.failed, summary.written) == (2, 40)


def test_random_split_keeps_duplicated_ids_together(tmp_path):
    exs = _examples(40)
    src = write_jsonl(tmp_path / "in.jsonl", [*exs, *exs[:20]])  # 20 ids twice
    for seed in range(5):
        result = runner.invoke(app, ["split", str(src), "a=50%", "b=rest", "--by", "random", "--seed", str(seed)])
        assert result.exit_code == 0, result.output
        a = {r["id"] for r in _read(tmp_path / "a.jsonl")}
        b = {r["id"] for r in _read(tmp_path / "b.jsonl")}
        assert not a & b


def test_repo_split_of_one_repository_falls_back_with_a_warning(tmp_path):
    exs = [make_example(f"ex-{i}", text=f"x = {i}\n", repo="https://git.example/o/only",
                        time=f"2026-01-{i + 1:02d}T00:00:00Z") for i in range(20)]
    src = write_jsonl(tmp_path / "in.jsonl", exs)
    result = runner.invoke(app, ["split", str(src), "train=80%", "test=rest"])
    assert result.exit_code == 0
    assert "warning: --by repo left test empty" in _err(result) and "split by time" in _err(result)
    test = _read(tmp_path / "test.jsonl")
    assert [r["id"] for r in test] == [f"ex-{i}" for i in range(16, 20)]  # the newest


def test_stats_and_split_skip_bad_lines_with_counts(tmp_path):
    good = _examples(6)
    src = write_jsonl(tmp_path / "in.jsonl", [*good[:3], "{broken", {"id": 5}, *good[3:]])
    result = runner.invoke(app, ["stats", str(src), "--json"])
    assert result.exit_code == 0
    data = orjson.loads(result.stdout)
    assert data["examples"] == 6 and data["bad_lines"] == 2
    assert data["bad_line_reasons"][0].startswith(f"{src}:4: malformed JSON")
    result = runner.invoke(app, ["split", str(src), "a=50%", "b=rest", "--by", "random"])
    assert result.exit_code == 0
    assert len(_read(tmp_path / "a.jsonl")) + len(_read(tmp_path / "b.jsonl")) == 6
    failed = _read(tmp_path / "in.split.failed.jsonl")
    assert [r["line"] for r in failed] == [4, 5]
    assert "2 bad lines skipped" in _err(result)


# -- runs whose every example failed; empty outputs ------------------------------------------------

def test_a_run_where_every_example_failed_exits_1_with_top_reasons(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ["{broken"] * 3 + [{"id": 7}] * 2)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["run", "validate", str(src), "-o", str(out), "--no-cache"])
    assert result.exit_code == 1
    err = _err(result)
    assert "top failure reasons:" in err
    assert "3 x malformed JSON" in err
    assert "every example failed (5)" in err
    assert f"warning: {out} is empty" in err


def test_pipeline_stops_after_a_stage_where_everything_failed(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ["{broken"] * 2)
    (tmp_path / "p.toml").write_text('input = "in.jsonl"\n[[stage]]\nname = "validate"\noutput = "a.jsonl"\n'
                                     '[[stage]]\nname = "validate"\noutput = "b.jsonl"\n')
    for _ in range(2):  # the second time the first stage is up to date (reused): the pipeline stops all the same
        result = runner.invoke(app, ["pipeline", str(tmp_path / "p.toml"), "--no-cache"])
        assert result.exit_code == 1
        assert "stage 1 (validate) failed for every example" in _err(result)
        assert not (tmp_path / "b.jsonl").exists()
    assert src.exists()


def test_pipeline_stops_after_a_stage_with_a_damaged_input(tmp_path):
    _truncated_gz(tmp_path)
    (tmp_path / "p.toml").write_text('input = "cut.jsonl.gz"\n[[stage]]\nname = "validate"\noutput = "a.jsonl"\n'
                                     '[[stage]]\nname = "validate"\noutput = "b.jsonl"\n')
    result = runner.invoke(app, ["pipeline", str(tmp_path / "p.toml"), "--no-cache"])
    assert result.exit_code == 1
    assert "stage 1 (validate) stopped at a damaged input" in _err(result)
    assert len(_read(tmp_path / "a.jsonl")) > 0 and not (tmp_path / "b.jsonl").exists()
    assert _leftovers(tmp_path) == []


# -- killed writers, export into a folder, README.md in a glob ------------------------------------

def test_sigterm_during_format_leaves_no_temp_file(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", _examples(6000))
    out = tmp_path / "rows.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "nextedit", "format", str(src), "-f", "zeta1", "-o", str(out)],
                            env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "rows.jsonl.partial").exists():  # the executor's partial output
        assert proc.poll() is None and time.monotonic() < deadline, "format ended before writing"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM  # cleaned up, then ended by the signal as usual
    assert _leftovers(tmp_path) == [] and not out.exists()


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_one(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".rows.jsonl.{dead.pid}.0badcafe.tmp"
    stale.write_bytes(b"x" * 1000)
    src = write_jsonl(tmp_path / "in.jsonl", _examples(2))
    assert runner.invoke(app, ["format", str(src), "-f", "zeta1", "-o", str(tmp_path / "rows.jsonl")]).exit_code == 0
    assert not stale.exists()


def test_export_zed_jsonl_into_an_existing_folder(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", _examples(3))
    folder = tmp_path / "out"
    folder.mkdir()
    result = runner.invoke(app, ["export", "zed", str(src), "-o", str(folder), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert len(_read(folder / "in.jsonl")) == 3
    assert _leftovers(tmp_path) == [] and _leftovers(folder) == []


def test_import_zed_skips_a_readme_named_by_a_glob(tmp_path):
    folder = tmp_path / "evals"
    folder.mkdir()
    src = write_jsonl(tmp_path / "in.jsonl", _examples(2))
    assert runner.invoke(app, ["export", "zed", str(src), "-o", str(folder)]).exit_code == 0
    (folder / "README.md").write_text("# Evals\n\nThese are our evals.\n")
    files = sorted(str(p) for p in folder.glob("*.md"))  # what `evals/*.md` expands to
    result = runner.invoke(app, ["import", "zed", *files, "-o", str(tmp_path / "back.jsonl")])
    assert result.exit_code == 0, result.output
    assert len(_read(tmp_path / "back.jsonl")) == 2


# -- readable tables, diffs, worst examples --------------------------------------------------------

def _wide_table() -> Table:
    table = Table(title="wide")
    for name in ("provider", "deltaChrF [95% CI]", "exact-lines F1 [95% CI]", "reversal", "kept", "no-edit"):
        table.add_column(name)
    table.add_row("openai-compatible:http://gpu-box:8000/v1#qwen-coder-1.5b", "12.34 [10.00, 14.00]",
                  "0.123 [0.100, 0.140]", "0.010", "0.45", "0.12")
    return table


def test_tables_are_plain_and_complete_when_piped():
    from nextedit.tables import print_table

    buf = io.StringIO()
    print_table(_wide_table(), Console(file=buf, width=80))
    text = buf.getvalue()
    assert "…" not in text and "openai-compatible:http://gpu-box:8000/v1#qwen-coder-1.5b" in text
    assert "12.34 [10.00, 14.00]" in text and "\x1b[" not in text


def test_tables_fold_instead_of_cutting_on_an_80_column_terminal():
    from nextedit.tables import print_table

    buf = io.StringIO()
    print_table(_wide_table(), Console(file=buf, width=80, force_terminal=True, color_system=None))
    text = buf.getvalue()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    first_column = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert "openai-compatible:http://gpu-box:8000/v1#qwen-coder-1.5b" in first_column  # folded, not cut


def test_show_diff_and_eval_worst(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", dataset(n_rename=3, n_rust=1, n_quiet=1))
    report = tmp_path / "rep"
    result = runner.invoke(app, ["eval", str(src), "--provider", "noop", "--report", str(report), "--worst", "2"])
    assert result.exit_code == 0, result.output
    assert "worst 2 for noop (deltaChrF):" in result.stdout
    worst_id = result.stdout.split("worst 2 for noop (deltaChrF):\n")[1].split()[1]
    scored = str(report / "scored.jsonl")
    unified = runner.invoke(app, ["show", scored, "--id", worst_id, "--diff", "unified", "--no-color"])
    assert unified.exit_code == 0
    assert "--- expected[0]" in unified.stdout and "+++ predicted (noop)" in unified.stdout
    assert "-    item.count += qty\n-    log(item, qty)\n+    item.count += amount\n" in unified.stdout
    side = runner.invoke(app, ["show", scored, "--id", worst_id, "--diff", "side-by-side", "--no-color"])
    assert side.exit_code == 0
    rows = side.stdout.split("expected vs predicted (side-by-side):\n")[1].splitlines()
    assert rows[0].split() == ["expected[0]", "predicted", "(noop)"]
    assert rows[3].split() == ["item.count", "+=", "qty", "|", "item.count", "+=", "amount"]
    bad = runner.invoke(app, ["show", scored, "--diff", "sideways"])
    assert bad.exit_code == 2
