"""The handwritten next-edit cases (bench/cases/handwritten): they import, their patches apply, the categories are
covered, and bench/handwritten.py and bench/quality.py's Zed sets work on them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from nextedit.metrics.reversal import reversal_ratio
from nextedit.patch import apply
from nextedit.sources.zed import read_zed, read_zed_file, to_markdown

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "bench" / "cases" / "handwritten"
FILES = sorted(p for p in CASES.glob("*.md") if p.name != "README.md")
CATEGORIES = {"rename", "mirror", "complete-line", "add-import", "signature", "literal", "add-field",
              "off-cursor", "no-edit"}
LANGUAGES = {"python", "rust", "typescript", "go", "java"}


def _tag(example, prefix: str) -> str:
    tags = [t.removeprefix(prefix) for t in example.source.tags if t.startswith(prefix)]
    assert len(tags) == 1, f"{example.id}: exactly one {prefix} tag expected, got {example.source.tags}"
    return tags[0]


@pytest.fixture(scope="module")
def examples():
    failures: list = []
    loaded = list(read_zed([CASES], on_failure=failures.append))
    assert failures == []
    return loaded


def test_every_case_imports_and_round_trips():
    assert len(FILES) >= 40
    for path in FILES:
        failures: list = []
        (example,) = read_zed_file(path, on_failure=failures.append)
        assert failures == [], path.name
        assert example.id == path.stem
        assert example.snapshot.history, f"{path.name}: no edit history"
        assert 0 <= example.snapshot.cursor <= len(example.snapshot.text)
        assert to_markdown(example, file_stem=path.stem) == path.read_text(encoding="utf-8"), path.name


def test_expected_edits_apply_and_do_not_undo_the_user(examples):
    for ex in examples:
        snap = ex.snapshot
        if _tag(ex, "category:") == "no-edit":
            assert ex.expected == [], ex.id
            continue
        assert ex.expected, f"{ex.id}: a case that wants an edit has no expected patch"
        for i, patch in enumerate(ex.expected):
            after = apply(patch, snap.text, start_line=snap.start_line)
            assert after != snap.text, f"{ex.id}: expected[{i}] changes nothing"
            assert reversal_ratio(snap.text, after, snap.history, path=snap.path,
                                  start_line=snap.start_line) == 0, f"{ex.id}: expected[{i}] undoes the history"


def test_categories_and_languages_are_covered(examples):
    categories = Counter(_tag(ex, "category:") for ex in examples)
    languages = Counter(_tag(ex, "language:") for ex in examples)
    assert set(categories) == CATEGORIES
    assert min(categories.values()) >= 4
    assert set(languages) == LANGUAGES
    assert 0.10 <= categories["no-edit"] / len(examples) <= 0.15
    assert len({ex.id for ex in examples}) == len(examples)


def test_readme_counts_match_the_folder(examples):
    readme = (CASES / "README.md").read_text(encoding="utf-8")
    assert f"{len(examples)} cases" in readme
    for name, n in Counter(_tag(ex, "category:") for ex in examples).items():
        assert f"| {name} | {n} |" in readme, name


def test_bench_script_runs_on_a_few_cases(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    for name in ("rename--py-local-variable.md", "noedit--go-unrelated-same-name.md"):
        shutil.copy(CASES / name, cases / name)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "handwritten.py"), "--cases", str(cases),
                          "--out", str(out), "--resamples", "50", "--provider", "noop"],
                         check=False, capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={"PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "| rename | propagate | 1 |" in run.stdout
    assert "| no-edit | noop | 1 |" in run.stdout
    figures = json.loads((out / "handwritten.json").read_text())
    assert set(figures) == {"rename", "no-edit", "overall"}
    assert set(figures["overall"]) == {"noop", "propagate"}
    assert figures["overall"]["noop"]["examples"] == 2


def test_bench_script_rejects_a_missing_folder(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "handwritten.py"), "--cases", str(tmp_path / "nope")],
                         check=False, capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2
    assert "nope: no such folder" in run.stderr


def test_quality_bench_takes_the_handwritten_folder(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import quality

    assert quality.zed_sets([CASES]) == [("handwritten", CASES)]
    assert [name for name, _ in quality.zed_sets([CASES, CASES])] == ["handwritten", "handwritten-2"]
    defaults = quality.zed_sets(None)
    assert ("handwritten", CASES) in defaults
    assert all(folder.is_dir() for _, folder in defaults)
    with pytest.raises(SystemExit, match="no such folder"):
        quality.zed_sets([tmp_path / "missing"])
