"""Tests for `nextedit split`: disjoint repositories, time order, seeds, sizes, spec errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from dataset_fixtures import make_example, write_jsonl
from typer.testing import CliRunner

from nextedit.cli import app
from nextedit.dataset.split import assign_groups, normalize_repo, parse_specs, targets

runner = CliRunner()


def _repo_examples(n_repos: int = 30, seed: int = 3) -> list:
    """Repos of 1..6 examples each, plus 10 examples without a repository."""
    exs = []
    for r in range(n_repos):
        for j in range(1 + (r * 7 + seed) % 6):
            exs.append(make_example(f"r{r}-{j}", text=f"x_{r}_{j} = {j}\n", repo=f"https://git.example/o/r{r}"))
    exs += [make_example(f"solo-{i}", text=f"y = {i}\n") for i in range(10)]
    return exs


def _read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_by_repo_is_disjoint_complete_and_near_target(tmp_path):
    exs = _repo_examples()
    src = write_jsonl(tmp_path / "all.jsonl", exs)
    result = runner.invoke(app, ["split", str(src), "train=80%", "test=rest", "--seed", "7"])
    assert result.exit_code == 0, result.output
    train, test = _read(tmp_path / "train.jsonl"), _read(tmp_path / "test.jsonl")
    assert sorted(r["id"] for r in train + test) == sorted(e.id for e in exs)  # each example exactly once
    train_repos = {r["source"]["repo"] for r in train} - {None}
    test_repos = {r["source"]["repo"] for r in test} - {None}
    assert train_repos and test_repos and not train_repos & test_repos
    assert abs(len(train) - 0.8 * len(exs)) <= 6  # a group of at most 6 can overshoot the target
    assert f"train: {len(train)} examples" in result.output and f"test: {len(test)} examples" in result.output


def test_records_are_copied_byte_for_byte_in_input_order(tmp_path):
    exs = _repo_examples(8)
    src = write_jsonl(tmp_path / "all.jsonl", exs)
    assert runner.invoke(app, ["split", str(src), "a=50%", "b=50%", "--by", "random"]).exit_code == 0
    original = src.read_bytes().splitlines()
    for name in ("a", "b"):
        lines = (tmp_path / f"{name}.jsonl").read_bytes().splitlines()
        positions = [original.index(line) for line in lines]
        assert positions == sorted(positions)
    assert len((tmp_path / "a.jsonl").read_bytes().splitlines()) == round(len(exs) / 2)


def test_repo_urls_are_normalised_and_repo_less_examples_split_individually(tmp_path):
    variants = ["https://GitHub.com/Acme/Tool.git", "https://github.com/acme/tool/", "git@github.com:acme/tool"]
    assert len({normalize_repo(v) for v in variants}) == 1
    exs = [make_example(f"t{i}", text=f"t = {i}\n", repo=variants[i % 3]) for i in range(9)]
    exs += [make_example(f"s{i}", text=f"s = {i}\n") for i in range(20)]
    src = write_jsonl(tmp_path / "all.jsonl", exs)
    assert runner.invoke(app, ["split", str(src), "a=50%", "b=rest", "--seed", "1"]).exit_code == 0
    a, b = _read(tmp_path / "a.jsonl"), _read(tmp_path / "b.jsonl")
    tool_in = [any(r["id"].startswith("t") for r in part) for part in (a, b)]
    assert tool_in.count(True) == 1  # all nine spellings of the one repository in one split
    solo_a = sum(r["id"].startswith("s") for r in a)
    assert 0 < solo_a < 20  # examples without repository are spread over both


def test_seed_is_deterministic_and_changes_assignment(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", _repo_examples())

    def run(seed: int, out: str) -> list[str]:
        res = runner.invoke(app, ["split", str(src), "train=70%", "test=rest", "--seed", str(seed),
                                  "--out-dir", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        return [r["id"] for r in _read(tmp_path / out / "test.jsonl")]

    assert run(5, "first") == run(5, "again")
    assert len({tuple(run(s, f"s{s}")) for s in range(4)}) > 1


def test_by_time_puts_the_future_in_the_last_split(tmp_path):
    exs = [make_example(f"e{i}", text=f"v = {i}\n", time=f"2026-03-{1 + (i * 5) % 28:02d}T12:00:00+00:00",
                        repo="https://r/one") for i in range(28)]
    src = write_jsonl(tmp_path / "all.jsonl", exs)
    result = runner.invoke(app, ["split", str(src), "train=75%", "test=rest", "--by", "time"])
    assert result.exit_code == 0, result.output
    train, test = _read(tmp_path / "train.jsonl"), _read(tmp_path / "test.jsonl")
    assert (len(train), len(test)) == (21, 7)
    assert max(r["source"]["time"] for r in train) < min(r["source"]["time"] for r in test)


def test_by_time_without_time_names_line_and_field(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", [make_example("a", time="2026-01-01T00:00:00Z"), make_example("b")])
    result = runner.invoke(app, ["split", str(src), "a=50%", "b=rest", "--by", "time"])
    assert result.exit_code == 1
    assert f"{src}:2: field source.time" in result.output
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()


def test_counts_rest_and_path_names(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", [make_example(f"e{i}", text=f"v = {i}\n") for i in range(40)])
    out = tmp_path / "sub" / "dev.jsonl"
    result = runner.invoke(app, ["split", str(src), "small=5", f"{out}=10", "big=rest", "--by", "random",
                                 "--out-dir", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    sizes = [len(_read(p)) for p in (tmp_path / "o" / "small.jsonl", out, tmp_path / "o" / "big.jsonl")]
    assert sizes == [5, 10, 25]


def test_unassigned_when_sizes_leave_a_remainder(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", [make_example(f"e{i}", text=f"v = {i}\n") for i in range(10)])
    result = runner.invoke(app, ["split", str(src), "a=30%", "b=20%", "--by", "random"])
    assert result.exit_code == 0
    assert len(_read(tmp_path / "a.jsonl")) == 3 and len(_read(tmp_path / "b.jsonl")) == 2
    assert "unassigned (not written): 5 examples" in result.output


def test_bad_line_is_quarantined_with_file_and_line_and_in_no_split(tmp_path):
    bad = make_example("b").to_dict()
    bad["snapshot"]["editable"] = [0, 9999]
    src = write_jsonl(tmp_path / "all.jsonl", [make_example("a"), bad])
    result = runner.invoke(app, ["split", str(src), "a=50%", "b=rest"])
    assert result.exit_code == 0
    assert "1 bad lines skipped" in result.output
    (row,) = _read(tmp_path / "all.split.failed.jsonl")
    assert row["line"] == 2 and row["reason"].startswith(f"{src}:2: field snapshot")
    assert [r["id"] for r in _read(tmp_path / "a.jsonl") + _read(tmp_path / "b.jsonl")] == ["a"]


@pytest.mark.parametrize("args, message", [
    (["a=50%", "b=rest", "c=rest"], "at most one"),
    (["a=70%", "b=40%"], "more than 100%"),
    (["a=half"], "N%, a count N, or rest"),
    (["a"], "NAME=SIZE"),
    (["a=10%", "a=20%"], "same file"),
])
def test_spec_errors(args, message):
    with pytest.raises(ValueError, match=message):
        parse_specs(args, Path("."))


def test_targets_and_group_assignment():
    specs = parse_specs(["a=80%", "b=20%"], Path("."))
    assert targets(specs, 7) == [6, 1]  # percentages adding to 100% leave nothing over
    assert sum(targets(specs, 13)) == 13
    # groups of 3 examples fill 6/4 targets: the midpoint rule gives 2 groups then 1 group (+1 leftover group)
    assert assign_groups([3, 3, 3, 1], [6, 4]) == [0, 0, 1, 1]
    assert assign_groups([1] * 5, [2, 2]) == [0, 0, 1, 1, -1]
    assert Counter(assign_groups([1] * 100, [80, 20])) == {0: 80, 1: 20}


def _pinned_examples() -> list:
    exs = []
    for name, n in (("pallets/itsdangerous", 4), ("spf13/cobra", 3), ("encode/httpx", 5), ("sindresorhus/ky", 6),
                    ("square/javapoet", 2)):
        exs += [make_example(f"{name}-{i}", text=f"v = {i}\n", repo=f"https://github.com/{name}") for i in range(n)]
    exs += [make_example(f"bundle-{i}", text=f"w = {i}\n", repo="/data/repos/serde-rs--json.bundle")
            for i in range(3)]
    return exs


def test_test_and_dev_repos_are_held_out_whole(tmp_path):
    from nextedit.dataset.split import repo_matches

    assert repo_matches("itsdangerous", "https://github.com/pallets/itsdangerous.git")
    assert repo_matches("pallets/itsdangerous", "https://github.com/pallets/itsdangerous")
    assert repo_matches("json", "/data/repos/serde-rs--json.bundle")
    assert not repo_matches("dangerous", "https://github.com/pallets/itsdangerous")
    src = write_jsonl(tmp_path / "all.jsonl", _pinned_examples())
    result = runner.invoke(app, ["split", str(src), "train=rest", "--test-repos", "itsdangerous, spf13/cobra",
                                 "--dev-repos", "json"])
    assert result.exit_code == 0, result.output
    test, dev, train = (_read(tmp_path / f"{n}.jsonl") for n in ("test", "dev", "train"))
    assert {r["source"]["repo"] for r in test} == {"https://github.com/pallets/itsdangerous",
                                                  "https://github.com/spf13/cobra"}
    assert len(test) == 7 and len(dev) == 3 and len(train) == 13
    assert {r["source"]["repo"] for r in dev} == {"/data/repos/serde-rs--json.bundle"}
    assert "test: 7 examples" in result.output and "spf13/cobra" in result.output
    # Pinned splits can also take a share of the other repositories; --repos pins any split name.
    result = runner.invoke(app, ["split", str(src), "train=rest", "val=5", "--repos", "val=ky",
                                 "--out-dir", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    val = _read(tmp_path / "b" / "val.jsonl")
    assert sum(r["source"]["repo"].endswith("/ky") for r in val) == 6 and len(val) > 6


def test_pinned_repositories_that_cannot_work_are_refused_before_writing(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", _pinned_examples())
    for args, message in (
        (["--test-repos", "nosuchrepo"], "no example comes from a repository matching 'nosuchrepo'"),
        (["--test-repos", "cobra", "--dev-repos", "spf13/cobra"], "pinned to two splits"),
        (["--test-repos", "cobra", "--by", "time"], "only with --by repo"),
        (["--repos", "oops"], "expected NAME=REPO,REPO"),
    ):
        result = runner.invoke(app, ["split", str(src), "train=rest", *args])
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert not (tmp_path / "train.jsonl").exists()
