"""The jump baselines (`jump`, `jump:nearest`) on a real git workspace (docs/jumps.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nextedit.metrics import score_prediction
from nextedit.patch import apply, make
from nextedit.predictors.base import PredictorError, get_predictor
from nextedit.record import Example, HistoryEvent, Location, Snapshot

A = "".join([
    "def compute_total(items):\n",
    "    return sum(items)\n",
    *[f"# filler {i}\n" for i in range(20)],
    "grand = compute_total([1, 2])\n",
])
B = "from a import compute_total\n\n\ndef report(xs):\n    return compute_total(xs)\n"
C = "def unrelated():\n    return 1\n"


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    for name, text in {"a.py": A, "b.py": B, "c.py": C}.items():
        (tmp_path / name).write_text(text)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True, env=env)
    return tmp_path


def _example(repo: Path, new_def: str) -> Example:
    after = A.replace("def compute_total(items):\n", new_def)
    diff = make(A, after, path="a.py").split("\n", 2)[2]
    cursor = after.index("\n")
    return Example(id="rename", source={"kind": "manual", "local_repo": str(repo), "revision": "HEAD"},
                   snapshot=Snapshot(path="a.py", text=after, cursor=cursor, editable=(0, after.index("# filler 3")),
                                     history=[HistoryEvent(path="a.py", diff=diff)]))


def test_a_rename_points_at_its_remaining_occurrences_across_the_workspace(workspace: Path):
    ex = _example(workspace, "def sum_total(items):\n")
    (pred,) = get_predictor("jump").predict(ex)
    where = [(loc.path, loc.start_line) for loc in pred.locations]
    assert where == [("a.py", 22), ("b.py", 0), ("b.py", 4)]  # below the cursor first, then other files
    fixed = apply(pred.locations[1].patch, B)
    assert fixed.startswith("from a import sum_total\n")
    (near,) = get_predictor("jump:nearest").predict(ex)
    assert (near.locations[0].path, near.locations[0].start_line) == ("a.py", 22)
    # Scored against where the commit's next edit really was: the import in b.py.
    ex.locations = [Location(path="b.py", start_line=0, end_line=1,
                             patch="@@ -1 +1 @@\n-from a import compute_total\n+from a import sum_total\n")]
    ex.predictions = [pred]
    values = score_prediction(ex, 0).values
    assert values["location_top1"] is False and values["location_top3"] is True
    assert values["jump_predicted"] is True and values["jump_correct"] is False
    ex.predictions = [pred.model_copy(update={"locations": pred.locations[1:]})]
    assert score_prediction(ex, 0).values["jump_correct"] is True


def test_a_changed_signature_points_at_its_call_sites(workspace: Path):
    ex = _example(workspace, "def compute_total(items, tax):\n")
    (pred,) = get_predictor("jump").predict(ex)
    assert [(loc.path, loc.start_line, loc.patch) for loc in pred.locations] == [
        ("a.py", 22, None), ("b.py", 4, None)]
    assert "signature" in pred.locations[0].reason
    (near,) = get_predictor("jump:nearest").predict(ex)
    assert near.locations == []  # no rename: nothing to follow


def test_without_the_repository_the_excerpt_is_the_workspace(tmp_path: Path):
    ex = _example(tmp_path / "missing", "def sum_total(items):\n")
    (pred,) = get_predictor("jump").predict(ex)
    assert [(loc.path, loc.start_line) for loc in pred.locations] == [("a.py", 22)]
    with pytest.raises(PredictorError, match="unknown mode"):
        get_predictor("jump:farthest")
