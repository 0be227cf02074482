"""Tests of the data-quality filters of `nextedit mine`: each filter on a scripted repository, its
counts in the mining log, `nextedit stats` and the command's output, and its settings."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from _mine_fixtures import Repo
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.mine.config import FilterConfig, MineConfig, load_filters
from nextedit.mine.miner import filtered_path, mine, read_mining_log, state_path
from nextedit.mine.quality import (
    example_filter_reason,
    file_filter_reason,
    whitespace_only,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BODY = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(30))  # 120 lines


def _rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []


def _mine(repo: Repo, out: Path, **filters) -> tuple[list[dict], list[dict], dict[str, dict]]:
    cfg = MineConfig(workers=1, samples_per_commit=1, filters=FilterConfig(**filters))
    mine(repo.path, out, cfg, progress=False)
    log = {row["revision"]: row for row in _rows(state_path(out))}
    return _rows(out), _rows(filtered_path(out)), log


def _patch(old: str, new: str, path: str = "a.py") -> str:
    return f"--- a/{path}\n+++ b/{path}\n@@ -1,1 +1,1 @@\n-{old}\n+{new}\n"


def test_whitespace_only_changes_skip_the_file_and_the_example():
    assert whitespace_only(["def f(x):\n", "  return x\n"], ["def f(x):\n", "\n", "    return x\n"])
    assert not whitespace_only(["a\n"], ["a\n"])
    assert not whitespace_only(["return x\n"], ["return y\n"])
    cfg = FilterConfig()
    assert file_filter_reason(["a = 1\n"], ["a  =  1\n"], 1, cfg) == "whitespace-only"
    assert file_filter_reason(["a = 1\n"], ["a  =  1\n"], 1, cfg.model_copy(update={"whitespace_only": False})) is None
    assert example_filter_reason({"expected": [_patch("x = 1", "x  =  1")]}, cfg)[0] == "whitespace-only"
    assert example_filter_reason({"expected": [_patch("x = 1", "x = 2")]}, cfg) is None
    assert example_filter_reason({"expected": []}, cfg) is None


def test_rewrites_of_existing_files_are_skipped_but_new_files_are_not():
    cfg = FilterConfig(rewrite_fraction=0.8, rewrite_min_lines=50)
    old = [f"line {i}\n" for i in range(100)]
    new = [f"other {i}\n" for i in range(100)]
    assert file_filter_reason(old, new, 100, cfg) == "rewrite"
    assert file_filter_reason(old, new, 60, cfg) is None  # 60% of the file: an edit, not a rewrite
    assert file_filter_reason([], new, 0, cfg) is None  # a new file
    assert file_filter_reason(old[:40], new[:40], 40, cfg) is None  # under rewrite_min_lines
    assert file_filter_reason(old, new, 100, cfg.model_copy(update={"rewrite_fraction": 0.0})) is None


def test_giant_and_trivially_implied_expected_edits():
    cfg = FilterConfig(max_expected_lines=4, trivial_chars=2)
    giant = "--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,3 @@\n" + "".join(f"-a{i}\n" for i in range(3)) + \
        "".join(f"+b{i}\n" for i in range(3))
    assert example_filter_reason({"expected": [giant]}, cfg) == ("giant", "6 changed lines > 4")
    assert example_filter_reason({"expected": [giant]}, cfg.model_copy(update={"max_expected_lines": 0})) is None
    name, detail = example_filter_reason({"expected": [_patch("call(x", "call(x)")]}, cfg)
    assert name == "trivial" and "')'" in detail
    assert example_filter_reason({"expected": [_patch("def f(x)", "def f(x):")]}, cfg)[0] == "trivial"
    assert example_filter_reason({"expected": [_patch("f(x", "f(x, y)")]}, cfg) is None  # a new name
    assert example_filter_reason({"expected": [_patch('v = "2.1"', 'v = "2.2"')]}, cfg) is None  # a digit
    assert example_filter_reason({"expected": [_patch("a", "a[0]]):")]}, cfg) is None  # over 2 characters
    assert example_filter_reason({"expected": [_patch("call(x", "call(x)")]},
                                 cfg.model_copy(update={"trivial_chars": 0})) is None


def _release_repo(path: Path) -> tuple[Repo, list[str]]:
    """Three release commits bumping a version line the same way, then a real edit."""
    repo = Repo(path)
    code = BODY + 'VERSION = "1.0.dev0"\n'
    shas = [repo.commit("init", {"pkg/version.py": code})]
    for v in ("1.0", "1.1", "1.2"):
        new = BODY + f'VERSION = "{v}"\n'
        shas.append(repo.commit(f"release {v}", {"pkg/version.py": new}))
        code = BODY + f'VERSION = "{v}.post0"\n'
        shas.append(repo.commit(f"start {v}.post0", {"pkg/version.py": code}))
    return repo, shas


def test_near_duplicates_across_commits_are_dropped_and_logged(tmp_path):
    repo, shas = _release_repo(tmp_path / "rel")
    out = tmp_path / "ex.jsonl"
    rows, filtered, _log = _mine(repo, out, near_duplicate=0.8)
    near = [f for f in filtered if f["filter"] == "near-duplicate"]
    assert near, "the repeated version bumps are near-duplicates"
    kept_ids = {r["id"] for r in rows}
    for f in near:
        assert "similar to" in f["detail"] and f["detail"].split()[-1] in kept_ids
        assert f["example"]["id"] == f["id"] and f["id"] not in kept_ids
    # near-duplicates are dropped by a pass over the finished output: counted in the mining log's totals
    from nextedit.mine.miner import read_mining_log

    assert read_mining_log(out)["filtered"]["near-duplicate"] == len(near)
    first_release = shas[1]
    assert any(r["source"]["revision"] == first_release for r in rows)  # the first of its kind is kept

    off_rows, off_filtered, _ = _mine(repo, tmp_path / "off.jsonl", near_duplicate=0.0)
    assert not [f for f in off_filtered if f["filter"] == "near-duplicate"]
    assert len(off_rows) == len(rows) + len(near)


def test_near_duplicate_state_survives_resume(tmp_path):
    repo, _ = _release_repo(tmp_path / "rel")
    whole = tmp_path / "whole.jsonl"
    _mine(repo, whole)
    part = tmp_path / "part.jsonl"
    # The first run stops after the three oldest commits (max_commits takes the newest, so use a range).
    oldest = repo.git("rev-list", "--reverse", "HEAD").split()[2]
    mine(repo.path, part, MineConfig(workers=1, samples_per_commit=1, rev_range=oldest), progress=False)
    mine(repo.path, part, MineConfig(workers=1, samples_per_commit=1), progress=False)
    # Same examples kept and dropped; the first run wrote the oldest commits first, so compare as sets.
    assert {r["id"] for r in _rows(part)} == {r["id"] for r in _rows(whole)}
    assert {r["id"] for r in _rows(filtered_path(part))} == {r["id"] for r in _rows(filtered_path(whole))}


def test_file_kinds_and_excludes_are_tunable(tmp_path):
    repo = Repo(tmp_path / "kinds")
    repo.commit("init", {"src/app.py": "x = 1\n", "vendor/lib.py": "y = 1\n", "gen/api_pb2.py": "z = 1\n"})
    sha = repo.commit("edit", {"src/app.py": "x = 2\n", "vendor/lib.py": "y = 2\n", "gen/api_pb2.py": "z = 2\n"})
    _, _, log = _mine(repo, tmp_path / "a.jsonl")
    assert log[sha]["skipped_files"] == {"vendor/lib.py": "vendored", "gen/api_pb2.py": "generated"}
    rows, _, log = _mine(repo, tmp_path / "b.jsonl", skip_files=["generated"], exclude=["src/**"])
    assert log[sha]["skipped_files"] == {"src/app.py": "excluded", "gen/api_pb2.py": "generated"}
    assert {r["snapshot"]["path"] for r in rows} == {"vendor/lib.py"}


def test_counts_reach_the_command_output_the_log_and_stats(tmp_path):
    repo = Repo(tmp_path / "mix")
    repo.commit("init", {"app.py": BODY})
    repo.commit("reformat", {"app.py": BODY.replace("    return", "        return")})  # whitespace-only file
    repo.commit("close a call", {"app.py": BODY.replace("return x + 3\n", "return (x + 3\n")})
    repo.commit("fix", {"app.py": BODY.replace("return x + 3\n", "return (x + 3)\n")})  # trivial
    repo.commit("edit", {"app.py": BODY.replace("return x", "return 2 * x")})  # 30 of 120 lines replaced: kept
    out = tmp_path / "ex.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["mine", str(repo.path), "-o", str(out), "--workers", "1",
                                 "--samples-per-commit", "1"])
    assert result.exit_code == 0, result.output
    assert "filtered examples: " in result.output and "trivial 1" in result.output
    assert "whitespace-only 1" in result.output  # the reformatted file, in "skipped files"
    log = read_mining_log(out)
    assert log is not None and log["filtered"]["trivial"] == 1
    assert log["skipped_files"]["whitespace-only"] == 1
    assert log["skipped_commits"]["only whitespace-only or rewritten code files"] == 1
    stats = runner.invoke(app, ["stats", str(out), "--json"])
    assert orjson.loads(stats.output)["mining"]["filtered"] == log["filtered"]
    table = runner.invoke(app, ["stats", str(out)])
    assert "mining filters" in table.output and "trivial" in table.output

    off = tmp_path / "off.jsonl"
    result = runner.invoke(app, ["mine", str(repo.path), "-o", str(off), "--workers", "1",
                                 "--samples-per-commit", "1", "--no-filters"])
    assert result.exit_code == 0 and "filtered examples" not in result.output
    assert len(_rows(off)) > len(_rows(out))


def test_filter_settings_file_and_its_errors(tmp_path):
    good = tmp_path / "filters.toml"
    good.write_text("[filters]\ntrivial_chars = 0\nexclude = ['tests/**']\n")
    cfg = load_filters(good)
    assert cfg.trivial_chars == 0 and cfg.exclude == ["tests/**"] and cfg.near_duplicate == 0.8
    assert load_filters(good, off=True).near_duplicate == 0.0
    assert load_filters(None) == FilterConfig()
    bad = tmp_path / "bad.toml"
    bad.write_text("near_duplicate = 2\n")
    with pytest.raises(ValueError, match=r"bad.toml: field near_duplicate: .*less than or equal to 1"):
        load_filters(bad)
    bad.write_text("skip_files = ['docs']\n")
    with pytest.raises(ValueError, match=r"bad.toml: field skip_files.0"):
        load_filters(bad)
    result = CliRunner().invoke(app, ["mine", str(tmp_path), "-o", str(tmp_path / "x.jsonl"), "--filters", str(bad)])
    assert result.exit_code == 2 and "bad.toml: field skip_files.0" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_near_duplicates_answer_as_datasketch_does():
    """The numpy MinHash/LSH of NearDuplicates gives datasketch's signatures, bands and matches."""
    import random

    import numpy as np

    datasketch = pytest.importorskip("datasketch")
    from datasketch.lsh import _optimal_param

    from nextedit.dataset.dedup import cursor_window, shingle_hashes, tokenize
    from nextedit.mine.quality import NearDuplicates, _lsh_params
    from nextedit.patch import changed_lines, make
    from nextedit.record import parse_example

    for threshold in (0.3, 0.5, 0.8, 0.9, 0.97):
        assert _lsh_params(threshold, 64) == _optimal_param(threshold, 64, 0.5, 0.5)
    rng = random.Random(3)
    words = ["alpha", "beta", "(", ")", "=", "gamma", "delta", ",", "self", "return", "1", "2"]
    examples = []
    for i in range(300):
        base = rng.randrange(20)  # few bases: many near-duplicates
        text = " ".join(random.Random(base).choice(words) for _ in range(60)).replace(") ", ")\n") + "\n"
        if rng.random() < 0.7:  # small random edits
            text = text.replace(rng.choice(words), rng.choice(words), 1)
        examples.append(parse_example({
            "id": f"e{i}", "snapshot": {"path": "a.py", "text": text, "cursor": len(text) // 2},
            "expected": [make(text, text + "x\n", path="a.py")] if i % 2 else []}))
    cfg = FilterConfig(near_duplicate=0.8)
    near = NearDuplicates(cfg)
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=64)
    template = datasketch.MinHash(num_perm=64, seed=1)
    sigs, ids, tokens, matched = [], [], {}, 0
    for i, ex in enumerate(examples):
        text = cursor_window(ex.snapshot, cfg.window_lines)
        if ex.expected:
            text += "\n" + "\n".join(changed_lines(ex.expected[0]))
        m = datasketch.MinHash(num_perm=64, seed=1, hashfunc=int, permutations=template.permutations,
                               scheme=template.scheme)
        m.update_batch(shingle_hashes(tokenize(text), 5, tokens).tolist())
        sig = near.signature(ex)
        assert np.array_equal(sig, m.hashvalues.astype(np.uint32))
        want = None
        for key in lsh.query(m):
            sim = float(np.count_nonzero(sigs[key] == m.hashvalues.astype(np.uint32))) / 64
            if sim >= 0.8 and (want is None or sim > want[1]):
                want = (ids[key], sim)
        assert near.match(sig) == want
        matched += want is not None
        if i % 3:  # remember only some, as the pass remembers kept examples
            lsh.insert(len(sigs), m, check_duplication=False)
            sigs.append(m.hashvalues.astype(np.uint32))
            ids.append(ex.id)
            near.add(ex.id, sig)
    assert matched > 20
