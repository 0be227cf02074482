"""End-to-end tests of `nextedit mine` on small scripted git repositories."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from _mine_fixtures import Repo, scripted_repo
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.mine.config import MineConfig
from nextedit.mine.gitlog import GitError
from nextedit.mine.miner import mine, state_path
from nextedit.mine.verify import changed_span
from nextedit.patch import apply, changed_lines
from nextedit.record import parse_example

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory):
    return scripted_repo(tmp_path_factory.mktemp("repo") / "shop")


def _rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _mine(repo_path: Path, out: Path, **options) -> list[dict]:
    options.setdefault("workers", 1)
    mine(repo_path, out, MineConfig(**options), progress=False)
    return _rows(out)


def _by_commit(rows: list[dict], sha: str) -> list[dict]:
    return [r for r in rows if r["source"]["revision"] == sha]


def test_every_example_applies_and_stays_inside_editable(repo, tmp_path):
    r, shas = repo
    rows = _mine(r.path, tmp_path / "ex.jsonl", samples_per_commit=4, seed=1)
    assert rows
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        ex = parse_example(row)
        snap = ex.snapshot
        assert snap.editable[0] <= snap.cursor <= snap.editable[1]
        assert len(ex.expected) == 1
        new = apply(ex.expected[0], snap.text, start_line=snap.start_line)
        assert new != snap.text
        a, b = changed_span(snap.text, new)
        assert snap.editable[0] <= a <= b <= snap.editable[1]
        assert 0 <= ex.expected_cursors[0] <= len(new)
        # The excerpt is the file at that state: applying the history to the parent gives it back.
        assert ex.source.kind == "git" and ex.source.license == "MIT"
        assert ex.source.revision in shas.values()
        assert ex.source.time.startswith("2026-01-") and ex.source.time.endswith("+01:00")
        assert ex.id.startswith(f"shop-{ex.source.revision[:8]}-")
    assert not (tmp_path / "ex.failed.jsonl").exists()


def _file_at(repo, sha: str, path: str) -> str:
    try:
        return repo.git("show", f"{sha}:{path}")
    except subprocess.CalledProcessError:
        return ""


def test_history_replays_onto_the_parent_commit(repo, tmp_path):
    r, _ = repo
    rows = _mine(r.path, tmp_path / "ex.jsonl", samples_per_commit=5, max_history_events=100)
    for row in rows:
        ex = parse_example(row)
        sha = ex.source.revision
        parent = r.git("rev-list", "--parents", "-n", "1", sha).split()[1:]
        texts: dict[str, str] = {}
        for event in ex.snapshot.history:
            if event.path not in texts:
                texts[event.path] = _file_at(r, parent[0], event.path) if parent else ""
            texts[event.path] = apply(event.diff, texts[event.path])
        snap = ex.snapshot
        full = texts.get(snap.path, _file_at(r, parent[0], snap.path) if parent else "")
        assert snap.text in full
        lines = full.split("\n")
        assert "\n".join(lines[snap.start_line:]).startswith(snap.text)
        # After history and expected, the edited region matches the commit's version of the file
        # (unless later units of the commit are still missing).
        final = _file_at(r, sha, snap.path)
        if row["source"]["split"]["history"] + row["source"]["split"]["expected"] == row["source"]["split"]["units"]:
            after = apply(ex.expected[0], snap.text, start_line=snap.start_line)
            assert after in final


def test_rename_history_holds_the_earlier_renames(repo, tmp_path):
    r, shas = repo
    rows = _by_commit(_mine(r.path, tmp_path / "ex.jsonl", samples_per_commit=5, half_typing=0.0), shas["rename"])
    assert len(rows) == 2  # three units: two split points
    for row in rows:
        ex = parse_example(row)
        assert ex.snapshot.history, "k >= 1: earlier renames are history"
        added = [line for e in ex.snapshot.history for line in changed_lines(e.diff) if line.startswith("+")]
        assert added and all("quantity" in line for line in added)
        expected = changed_lines(ex.expected[0])
        assert any(line.startswith("-") and "amount" in line for line in expected)
        assert any(line.startswith("+") and "quantity" in line for line in expected)
        # The snapshot is mid-rename: both names occur.
        assert "amount" in ex.snapshot.text and "quantity" in ex.snapshot.text


def test_new_function_is_typed_before_its_call_site(repo, tmp_path):
    r, shas = repo
    for seed in range(4):
        rows = _by_commit(_mine(r.path, tmp_path / f"ex{seed}.jsonl", seed=seed, samples_per_commit=5),
                          shas["function"])
        assert rows
        for row in rows:
            ex = parse_example(row)
            history = "".join(e.diff for e in ex.snapshot.history)
            assert "+def apply_discount" in history
            assert ex.snapshot.path == "shop/app.py"


def test_typo_fix_and_half_typed_lines(repo, tmp_path):
    r, shas = repo
    rows = _mine(r.path, tmp_path / "ex.jsonl", samples_per_commit=3, half_typing=1.0)
    typo = _by_commit(rows, shas["typo"])
    assert len(typo) == 1
    ex = parse_example(typo[0])
    assert "+    \"\"\"Handle a message we receive from the queue.\"\"\"" in ex.expected[0].splitlines()
    half = [parse_example(row) for row in rows if "half-typed" in row["source"]["tags"]]
    assert len(half) >= 3
    for ex in half:
        snap = ex.snapshot
        line_start = snap.text.rfind("\n", 0, snap.cursor) + 1
        line_end = snap.text.find("\n", snap.cursor)
        typed = snap.text[line_start:snap.cursor]
        partial = snap.text[line_start:line_end]
        removed = [x[1:] for x in changed_lines(ex.expected[0]) if x.startswith("-")]
        added = [x[1:] for x in changed_lines(ex.expected[0]) if x.startswith("+")]
        # The expected patch turns the half-typed line into the full one the prefix started.
        assert partial in removed
        assert any(a.startswith(typed) and a != partial for a in added)
        # ... and the half-typed line is the newest history edit.
        assert "+" + partial in ex.snapshot.history[-1].diff.splitlines()
    # Without typing imitation no line is half-typed.
    rows0 = _mine(r.path, tmp_path / "ex0.jsonl", samples_per_commit=3, half_typing=0.0)
    assert not [row for row in rows0 if "half-typed" in row["source"]["tags"]]


SKIPPED = {"package-lock.json": "lock", "yarn.lock": "lock", "vendor/left_pad.js": "vendored",
           "static/app.min.js": "minified", "static/logo.png": "binary", "docs/notes.md": "not code"}


def test_lock_vendored_minified_and_binary_files_are_skipped(repo, tmp_path):
    r, shas = repo
    out = tmp_path / "ex.jsonl"
    rows = _mine(r.path, out, samples_per_commit=3)
    log = {row["revision"]: row for row in _rows(state_path(out))}
    assert log[shas["lock"]]["status"] == "skipped"
    assert log[shas["lock"]]["reason"] == "no code files changed"
    assert not _by_commit(rows, shas["lock"])
    mixed = log[shas["mixed"]]
    assert mixed["status"] == "mined"
    assert {p: mixed["skipped_files"][p] for p in mixed["skipped_files"]} == {
        p: reason for p, reason in SKIPPED.items() if p != "package-lock.json"}
    for row in rows:
        paths = {row["snapshot"]["path"]} | {e["path"] for e in row["snapshot"]["history"]}
        assert paths <= {"shop/app.py", "shop/util.py"}


def test_line_count_limits_skip_commits(repo, tmp_path):
    r, shas = repo
    out = tmp_path / "ex.jsonl"
    _mine(r.path, out, min_changed_lines=3, max_changed_lines=20)
    log = {row["revision"]: row for row in _rows(state_path(out))}
    assert log[shas["typo"]]["reason"] == "too few changed lines (2 < 3)"
    assert log[shas["initial"]]["reason"].startswith("too many changed lines")
    assert log[shas["function"]]["status"] == "mined"


def test_same_seed_same_bytes_other_seed_other_examples(repo, tmp_path):
    r, _ = repo
    a = (tmp_path / "a.jsonl")
    b = (tmp_path / "b.jsonl")
    c = (tmp_path / "c.jsonl")
    _mine(r.path, a, seed=7)
    _mine(r.path, b, seed=7, workers=2)  # worker processes give the same output, in the same order
    _mine(r.path, c, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_resume_after_a_crash_finishes_without_loss_or_duplicates(repo, tmp_path):
    r, _ = repo
    fresh = tmp_path / "fresh.jsonl"
    _mine(r.path, fresh, samples_per_commit=3)
    out = tmp_path / "out.jsonl"
    shutil.copy(fresh, out)
    shutil.copy(state_path(fresh), state_path(out))
    # Crash in the middle of the third commit: its log row is missing, one of its lines is written,
    # the next line is torn.
    log_lines = state_path(out).read_bytes().splitlines(keepends=True)
    state_path(out).write_bytes(b"".join(log_lines[:2]) + log_lines[2][:10])
    done = {orjson.loads(x)["revision"] for x in log_lines[:2]}
    lines = out.read_bytes().splitlines(keepends=True)
    keep = [x for x in lines if orjson.loads(x)["source"]["revision"] in done]
    third = [x for x in lines if orjson.loads(x)["source"]["revision"] not in done]
    out.write_bytes(b"".join(keep) + third[0] + third[1][:25])
    mine(r.path, out, MineConfig(samples_per_commit=3, workers=1), progress=False)
    assert out.read_bytes() == fresh.read_bytes()
    assert [orjson.loads(x)["revision"] for x in state_path(out).read_bytes().splitlines()] == [
        orjson.loads(x)["revision"] for x in state_path(fresh).read_bytes().splitlines()]
    # Running again finds everything done and writes nothing.
    summary = mine(r.path, out, MineConfig(samples_per_commit=3, workers=1), progress=False)
    assert summary.resumed == summary.commits and summary.examples == 0
    assert out.read_bytes() == fresh.read_bytes()


def test_rev_range_paths_and_max_commits(repo, tmp_path):
    r, shas = repo
    rows = _mine(r.path, tmp_path / "a.jsonl", rev_range=f"{shas['rename']}..{shas['typo']}")
    assert {row["source"]["revision"] for row in rows} == {shas["function"], shas["typo"]}
    rows = _mine(r.path, tmp_path / "b.jsonl", paths=["shop/util.py"])
    assert rows and all(row["snapshot"]["path"] == "shop/util.py" for row in rows)
    assert all(e["path"] == "shop/util.py" for row in rows for e in row["snapshot"]["history"])
    summary = mine(r.path, tmp_path / "c.jsonl", MineConfig(max_commits=2, workers=1), progress=False)
    assert summary.commits == 2
    rows = _mine(r.path, tmp_path / "d.jsonl", since="2026-01-04T00:00:00+01:00")
    assert {row["source"]["revision"] for row in rows} == {shas["typo"], shas["mixed"]}  # "lock" is skipped


def test_unusable_repositories_are_refused_before_writing(tmp_path):
    out = tmp_path / "out" / "x.jsonl"
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitError, match="plain: not a git repository"):
        mine(tmp_path / "plain", out, MineConfig(workers=1))
    Repo(tmp_path / "empty")
    with pytest.raises(GitError, match="no commits to mine"):
        mine(tmp_path / "empty", out, MineConfig(workers=1))
    with pytest.raises(GitError, match="not a directory"):
        mine(tmp_path / "missing", out, MineConfig(workers=1))
    with pytest.raises(ValueError, match="plain JSONL"):
        mine(tmp_path / "empty", tmp_path / "x.jsonl.gz", MineConfig(workers=1))
    assert not (tmp_path / "out").exists()


def test_cli_mines_and_reports(repo, tmp_path):
    r, _ = repo
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(app, ["mine", str(r.path), "-o", str(out), "--workers", "1",
                                      "--samples-per-commit", "2"])
    assert result.exit_code == 0, result.output
    assert "commits 6: mined 5, skipped 1" in result.output
    assert "lock" in result.output
    assert _rows(out)
    bad = CliRunner().invoke(app, ["mine", str(r.path), "-o", str(tmp_path / "x.jsonl"),
                                   "--rev-range", "nope..main"])
    assert bad.exit_code == 2
    assert "nope..main" in bad.output


def test_mines_this_projects_own_repository(tmp_path):
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    out = tmp_path / "own.jsonl"
    summary = mine(root, out, MineConfig(max_commits=4, workers=1), progress=False)
    assert summary.commits >= 1
    for row in _rows(out):
        parse_example(row)


WORDS = ["alpha", "beta", "δelta", "naïve", "x", "(", ")", ":", "=", "+", "{", "}", "\t", "  ", "😀"]


@pytest.mark.parametrize("seed", [0, 1])
def test_random_histories_with_crlf_unicode_and_missing_newlines_mine_cleanly(tmp_path, seed):
    rng = random.Random(seed)
    repo = Repo(tmp_path / "r")
    files: dict[str, list[str]] = {}
    for i in range(40):
        changes: dict[str, str | bytes | None] = {}
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(["a.py", "b.js", "c.rs", "d.go", "e.py"])
            lines = list(files.get(name, []))
            for _ in range(rng.randint(1, 6)):
                new = "".join(rng.choice(WORDS) + rng.choice([" ", "", "_"]) for _ in range(rng.randint(0, 8)))
                op = rng.random()
                if op < 0.4 or not lines:
                    lines.insert(rng.randint(0, len(lines)), new)
                elif op < 0.7:
                    lines[rng.randrange(len(lines))] = new
                else:
                    del lines[rng.randrange(len(lines))]
            files[name] = lines
            newline = "\r\n" if name == "b.js" else "\n"
            changes[name] = newline.join(lines) + (newline if rng.random() < 0.7 else "")
        repo.commit(f"c{i}", changes)
    out = tmp_path / "ex.jsonl"
    summary = mine(repo.path, out, MineConfig(workers=1, samples_per_commit=4, half_typing=0.7), progress=False)
    assert summary.examples > 50
    assert summary.failed == 0, (tmp_path / "ex.failed.jsonl").read_text()[:2000]
    for row in _rows(out):
        ex = parse_example(row)
        apply(ex.expected[0], ex.snapshot.text, start_line=ex.snapshot.start_line)


def test_a_clone_records_its_local_path_and_context_finds_it_without_configuration(repo, tmp_path):
    from nextedit.context.stage import ContextStage

    r, _ = repo
    clone = tmp_path / "work" / "shop-clone"
    subprocess.run(["git", "clone", "-q", str(r.path), str(clone)], check=True, env=r.env())
    rows = _mine(clone, tmp_path / "ex.jsonl")
    assert rows
    for row in rows:
        assert row["source"]["repo"] == str(r.path)  # the remote, kept as provenance
        assert row["source"]["local_repo"] == str(clone.resolve())
        assert row["id"].startswith("shop-")
    example = parse_example(rows[-1])
    out = ContextStage().process(example)
    assert out.snapshot.related
