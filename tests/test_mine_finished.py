"""No-edit examples after a commit's last edit group (nextedit.mine.finished), alone and through the miner."""

from __future__ import annotations

import subprocess

from nextedit import patch as P
from nextedit.jsonl import read_examples
from nextedit.mine.config import MineConfig
from nextedit.mine.finished import TAG, completes_commit, finished_example
from nextedit.mine.miner import mine
from nextedit.record import Example, HistoryEvent, Snapshot, Source


def _example(split: dict) -> Example:
    text = "def f(a):\n    return a\n\nx = f(1)\n"
    new = text.replace("return a", "return a + 1")
    src = Source(kind="git", repo="/r", revision="abc", tags=["git"])
    src.split = split  # type: ignore[attr-defined]
    return Example(id="r-abc-0", source=src,
                   snapshot=Snapshot(path="m.py", text=text, cursor=14, start_line=10,
                                     history=[HistoryEvent(path="m.py", diff="@@ -11,1 +11,1 @@\n-def f():\n+def f(a):\n")]),
                   expected=[P.make(text, new, path="m.py", start_line=10)])


def test_the_example_after_the_last_group_expects_no_edit_and_has_the_edit_in_its_history():
    ex = _example({"history": 2, "expected": 1, "units": 3})
    assert completes_commit(ex)
    done = finished_example(ex)
    assert done is not None
    done = Example.model_validate(done.to_dict())  # still a valid record
    assert done.expected == [] and done.id.endswith(TAG) and TAG in done.source.tags
    assert "return a + 1" in done.snapshot.text
    assert done.snapshot.text[:done.snapshot.cursor].endswith("return a + 1")
    assert len(done.snapshot.history) == 2 and "+    return a + 1" in done.snapshot.history[-1].diff
    assert not done.snapshot.history[-1].diff.startswith("---")
    # the history event is the edit that turned the old text into the new one
    old = P.apply(ex.expected[0], ex.snapshot.text, start_line=10)
    assert old == done.snapshot.text


def test_only_samples_that_complete_their_commit_qualify():
    assert not completes_commit(_example({"history": 1, "expected": 1, "units": 3}))
    assert not completes_commit(_example({"history": 1}))


def _repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)
    run("init", "-q")
    run("config", "user.email", "t@example.com")
    run("config", "user.name", "t")
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(6))
    (repo / "m.py").write_text(body)
    run("add", ".")
    run("commit", "-qm", "one")
    # one-unit commits: their only sample completes the commit, whatever the seed
    (repo / "m.py").write_text(body.replace("return x + 1", "return x + 10"))
    run("commit", "-qam", "two")
    (repo / "m.py").write_text(body.replace("return x + 1", "return x + 10").replace("return x + 4", "return x * 4"))
    run("commit", "-qam", "three")
    return repo


def test_the_miner_adds_finished_examples_only_when_asked(tmp_path):
    repo = _repo(tmp_path)
    plain, more = tmp_path / "plain.jsonl", tmp_path / "more.jsonl"
    mine(repo, plain, MineConfig(samples_per_commit=3, workers=1))
    mine(repo, more, MineConfig(samples_per_commit=3, workers=1, finished_examples=1.0))
    base = list(read_examples(plain))
    extra = list(read_examples(more))
    assert all(ex.expected for ex in base)
    finished = [ex for ex in extra if not ex.expected]
    assert finished and all(TAG in ex.source.tags for ex in finished)
    assert len(extra) == len(base) + len(finished)
