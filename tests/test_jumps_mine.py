"""Mining keeps where the remaining edits are (`Example.locations`) and makes jump examples (docs/jumps.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest
from _mine_fixtures import scripted_repo

from nextedit.mine.config import MineConfig
from nextedit.mine.miner import mine
from nextedit.patch import apply, split_lines
from nextedit.record import parse_example

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("jumps")
    repo, _ = scripted_repo(root / "shop")
    out = root / "ex.jsonl"
    mine(repo.path, out, MineConfig(workers=1, samples_per_commit=4, seed=1, jump_examples=1.0), progress=False)
    return repo, [parse_example(orjson.loads(line)) for line in out.read_bytes().splitlines() if line.strip()]


def _file_at(repo, rev: str, path: str) -> str:
    try:
        return repo.git("show", f"{rev}:{path}")
    except subprocess.CalledProcessError:
        return ""


def _workspace(repo, ex) -> dict[str, str]:
    """Each file the example's locations or history touch, as it stands at the snapshot."""
    parent = f"{ex.source.revision}^"
    texts: dict[str, str] = {}
    for event in ex.snapshot.history:
        texts.setdefault(event.path, _file_at(repo, parent, event.path))
        texts[event.path] = apply(event.diff, texts[event.path])
    for loc in ex.locations:
        texts.setdefault(loc.path, _file_at(repo, parent, loc.path))
    return texts


def test_every_example_knows_where_the_rest_of_its_commit_is(mined):
    repo, examples = mined
    assert examples
    for ex in examples:
        assert ex.locations, ex.id
        if "half-typed" in ex.source.tags:
            continue  # locations number the file without the half-typed line
        texts = _workspace(repo, ex)
        # All remaining edits, applied bottom-up at their snapshot lines, give the commit's files.
        for path in {loc.path for loc in ex.locations}:
            text = texts[path]
            here = [(-x.start_line, -i, x) for i, x in enumerate(ex.locations) if x.path == path]
            for _, _, loc in sorted(here, key=lambda t: t[:2]):
                assert loc.start_line <= len(split_lines(text))
                text = apply(loc.patch, text)
            assert text == _file_at(repo, ex.source.revision, path), (ex.id, path)


def test_the_first_location_is_the_expected_edit(mined):
    _, examples = mined
    for ex in examples:
        if not ex.expected or "half-typed" in ex.source.tags:
            continue
        snap, first = ex.snapshot, ex.locations[0]
        assert first.path == snap.path
        after = apply(ex.expected[0], snap.text, start_line=snap.start_line)
        old, new = split_lines(snap.text), split_lines(after)
        top = next(i for i, (a, b) in enumerate(zip(old + [None], new + [None])) if a != b)
        assert first.start_line <= snap.start_line + top <= max(first.end_line, first.start_line + 1)


def test_jump_examples_expect_no_edit_here_and_point_elsewhere(mined):
    _, examples = mined
    jumps = [ex for ex in examples if "jump" in ex.source.tags]
    assert jumps and any("other-file" in ex.source.tags for ex in jumps)
    for ex in jumps:
        snap = ex.snapshot
        assert ex.expected == [] and ex.id.endswith("-jump")
        target = ex.locations[0]
        e0, e1 = snap.editable
        rows = (snap.start_line + snap.text.count("\n", 0, e0), snap.start_line + snap.text.count("\n", 0, e1))
        assert target.path != snap.path or target.end_line <= rows[0] or target.start_line > rows[1]
        assert ("other-file" in ex.source.tags) == (target.path != snap.path)


def test_jump_examples_are_off_by_default(tmp_path: Path):
    repo, _ = scripted_repo(tmp_path / "shop")
    mine(repo.path, tmp_path / "ex.jsonl", MineConfig(workers=1, seed=1), progress=False)
    rows = [orjson.loads(x) for x in (tmp_path / "ex.jsonl").read_bytes().splitlines()]
    assert rows and not any("jump" in r["source"]["tags"] for r in rows)
    assert all(r["locations"] for r in rows)
