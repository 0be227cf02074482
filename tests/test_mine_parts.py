"""Pieces of the git miner: commit streaming, file filters, licenses, typing units, order, splits, typing."""

from __future__ import annotations

import difflib
import itertools
import random

import pytest
from _mine_fixtures import MIT, Repo, scripted_repo
from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit.mine.config import MineConfig
from nextedit.mine.edits import Edit, apply_edits, current_start, file_edits
from nextedit.mine.filters import content_skip_reason, path_matches, path_skip_reason
from nextedit.mine.gitlog import (
    Commit,
    GitError,
    GitObjects,
    RawHunk,
    iter_commits,
    parse_diff_tree,
)
from nextedit.mine.license import detect_license, manifest_license
from nextedit.mine.miner import mine_commit_safely, repo_info, repo_license, repo_slug
from nextedit.mine.ordering import defined_names, is_test_path, typing_order
from nextedit.mine.split import (
    expected_group,
    history_events,
    partial_candidates,
    sample_partial,
    split_points,
)
from nextedit.mine.verify import changed_span

# ------------------------------------------------------------------ git plumbing


def test_commits_stream_newest_first_without_merges(tmp_path):
    repo = Repo(tmp_path / "r")
    first = repo.commit("one", {"a.py": "x = 1\n"})
    repo.git("checkout", "-q", "-b", "side")
    side = repo.commit("side", {"b.py": "y = 2\n"})
    repo.git("checkout", "-q", "main")
    main2 = repo.commit("two", {"a.py": "x = 2\n"})
    repo.git("merge", "-q", "--no-ff", "-m", "merge", "side")
    shas = [c.sha for c in iter_commits(repo.path)]
    assert set(shas) == {first, side, main2} and len(shas) == 3
    assert shas[-1] == first
    root = next(c for c in iter_commits(repo.path) if c.sha == first)
    assert root.parents == ()
    assert [c.sha for c in iter_commits(repo.path, max_commits=1)] == [shas[0]]
    assert [c.sha for c in iter_commits(repo.path, paths=["b.py"])] == [side]
    assert [c.sha for c in iter_commits(repo.path, paths=["*.py"], rev_range=f"{first}..{main2}")] == [main2]
    with pytest.raises(GitError, match="nope"):
        list(iter_commits(repo.path, rev_range="nope"))


def _changes(repo, sha):
    commit = next(c for c in iter_commits(repo.path) if c.sha == sha)
    return {f.path: f for f in parse_diff_tree(commit.diff)}


def test_commit_patches_hunks_statuses_and_binary(tmp_path):
    repo, shas = scripted_repo(tmp_path / "shop")
    files = _changes(repo, shas["mixed"])
    assert files["static/logo.png"].binary
    assert files["vendor/left_pad.js"].status == "A" and files["vendor/left_pad.js"].old_oid is None
    util = files["shop/util.py"]
    assert util.status == "M" and util.hunks == [RawHunk(4, 0, 5, 2)]  # two lines added after line 4
    assert util.hunks[0].old_index == 4 and util.hunks[0].new_index == 4
    root = _changes(repo, shas["initial"])
    assert root["shop/app.py"].status == "A" and root["shop/app.py"].hunks[0].old_len == 0
    typo = next(c for c in iter_commits(repo.path) if c.sha == shas["typo"])
    assert typo.subject == "Fix a typo" and typo.time == "2026-01-04T12:00:00+01:00"
    assert typo.parents == (shas["function"],)
    with GitObjects(repo.path) as objects:
        assert objects.blob(util.new_oid).decode().count("raise ValueError") == 1
        with pytest.raises(GitError):
            objects.read("0" * 40)



def test_blobs_prefetched_in_one_round_trip_are_the_blobs_read_one_by_one(tmp_path):
    repo, shas = scripted_repo(tmp_path / "shop")
    oids = [oid for sha in shas.values() for f in _changes(repo, sha).values() for oid in (f.old_oid, f.new_oid)]
    with GitObjects(repo.path) as one_by_one:
        want = {oid: one_by_one.read(oid)[1] for oid in oids if oid is not None}
    with GitObjects(repo.path) as objects:
        objects.prefetch([*oids, None, "0" * 40])  # a missing object is left for blob() to report
        assert {oid: objects.blob(oid) for oid in want} == want
        assert objects.blob(None) == b""
        with pytest.raises(GitError):
            objects.blob("0" * 40)
        assert objects.blob(next(iter(want))) == next(iter(want.values()))  # the pipe is still in step


def test_parse_diff_tree_skips_body_lines_that_look_like_headers():
    out = (b"diff --git a/x.py b/x.py\nindex 1111111..2222222 100644\n--- a/x.py\n+++ b/x.py\n"
           b"@@ -1,2 +1,2 @@\n--- not a header\n-diff --git a/y b/y\n+++ b/kept\n+@@ -9 +9 @@\n"
           b'diff --git "a/t\\tab" "b/t\\tab"\nindex 3..4 100644\n')
    files = parse_diff_tree(out)
    assert [f.path for f in files] == ["x.py"]
    assert files[0].hunks == [RawHunk(1, 2, 1, 2)]


# ------------------------------------------------------------------ filters and licenses


@pytest.mark.parametrize(("path", "reason"), [
    ("src/app.py", None), ("lib/x.rs", None), ("Cargo.lock", "lock"), ("web/package-lock.json", "lock"),
    ("go.sum", "lock"), ("vendor/github.com/x/y.go", "vendored"), ("web/node_modules/a/index.js", "vendored"),
    ("third_party/z.c", "vendored"), ("static/app.min.js", "minified"), ("proto/a_pb2.py", "generated"),
    ("api/x.pb.go", "generated"), ("README.md", "not code"), ("data.csv", "not code"), ("ci.yml", "not code"),
])
def test_path_skip_reasons(path, reason):
    assert path_skip_reason(path) == reason


def test_content_skip_reasons():
    assert content_skip_reason(b"x = 1\n") is None
    assert content_skip_reason(b"# Code generated by protoc. DO NOT EDIT.\nx = 1\n") == "generated"
    assert content_skip_reason(b"var a=1;" * 300) == "minified"
    assert content_skip_reason(b"\x89PNG\0\0") == "binary"
    assert content_skip_reason(b"caf\xe9\n") == "binary"


def test_path_globs():
    assert path_matches("a/b/c.py", [])
    assert path_matches("a/b/c.py", ["*.py"])
    assert path_matches("a/b/c.py", ["a/**/*.py"]) and path_matches("a/c.py", ["a/**/*.py"])
    assert not path_matches("a/b/c.py", ["a/*.py"])
    assert not path_matches("a/b/c.rs", ["*.py", "docs/**"])


APACHE = "                                 Apache License\n                           Version 2.0, January 2004\n"
BSD3 = ("Redistribution and use in source and binary forms, with or without modification, are permitted.\n"
        "3. Neither the name of the copyright holder nor the names of its contributors may be used\n")
BSD2 = ("Redistribution and use in source and binary forms, with or without\nmodification, are permitted.\n"
        "2. Redistributions in binary form must reproduce the above copyright notice\n")
GPL3 = "                    GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n"
GPL2 = "                    GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991\n"
LGPL21 = "GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999\n"
MPL = "Mozilla Public License Version 2.0\n==================================\n"
ISC = ("Permission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee "
       "is hereby granted, provided that the above\ncopyright notice appear in all copies.\n")
UNLICENSE = "This is free and unencumbered software released into the public domain.\n"


@pytest.mark.parametrize(("text", "spdx"), [
    (MIT, "MIT"), (APACHE, "Apache-2.0"), (BSD3, "BSD-3-Clause"), (BSD2, "BSD-2-Clause"), (GPL3, "GPL-3.0"),
    (GPL2, "GPL-2.0"), (LGPL21, "LGPL-2.1"), (MPL, "MPL-2.0"), (ISC, "ISC"), (UNLICENSE, "Unlicense"),
    ("// SPDX-License-Identifier: MIT OR Apache-2.0\n", "MIT OR Apache-2.0"), ("All rights reserved.\n", None),
])
def test_detect_license(text, spdx):
    assert detect_license(text) == spdx


def test_repo_license_and_slug(tmp_path):
    repo = Repo(tmp_path / "dual")
    repo.commit("c", {"LICENSE-MIT": MIT, "LICENSE-APACHE": APACHE, "a.py": "x = 1\n"})
    assert repo_license(repo.path) == "Apache-2.0 OR MIT"
    bare = Repo(tmp_path / "none")
    bare.commit("c", {"a.py": "x = 1\n"})
    assert repo_license(bare.path) is None
    bare.commit("manifest", {"pyproject.toml": '[project]\nname = "x"\nlicense = "Apache-2.0"\n'})
    assert repo_license(bare.path) == "Apache-2.0"
    assert manifest_license("package.json", '{"license": "MIT"}') == "MIT"
    assert manifest_license("Cargo.toml", '[package]\nlicense = "MIT OR Apache-2.0"\n') == "MIT OR Apache-2.0"
    assert manifest_license("package.json", '{"license": "SEE LICENSE IN x.txt"}') is None
    assert manifest_license("pyproject.toml", "not toml [") is None
    assert repo_slug("https://github.com/Acme/Inventory.git") == "inventory"
    assert repo_slug("git@github.com:acme/my_repo.git") == "my-repo"
    assert repo_slug("/data/repos/pallets--itsdangerous.bundle") == "pallets-itsdangerous"
    assert repo_slug("/work/main") == "main"


# ------------------------------------------------------------------ typing units


def _hunks(old: list[str], new: list[str]) -> list[RawHunk]:
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag != "equal":
            ol, nl = i2 - i1, j2 - j1
            out.append(RawHunk(i1 + 1 if ol else i1, ol, j1 + 1 if nl else j1, nl))
    return out


lines = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "\n", "d\n"]), max_size=30)


@settings(max_examples=150, deadline=None)
@given(old=lines, new=lines, mask=st.integers(min_value=0), max_lines=st.integers(1, 4))
def test_units_apply_in_any_subset(old, new, mask, max_lines):
    edits = file_edits("f", old, new, _hunks(old, new), max_lines=max_lines)
    assert apply_edits(old, edits) == new
    assert all(len(e.new) <= max_lines for e in edits)
    subset = [e for i, e in enumerate(edits) if mask >> i & 1]
    state = apply_edits(old, subset)
    for e in edits:
        if e not in subset and e.piece == 0:
            start = current_start(e, subset)
            assert state[start:start + len(e.old)] == list(e.old)


def _unit(path: str, hunk: int, start: int, old: list[str], new: list[str], piece: int = 0) -> Edit:
    return Edit(path, hunk, piece, start, tuple(old), tuple(new))


def test_definitions_come_before_their_uses_across_files():
    call = _unit("app.py", 0, 10, ["    return total\n"], ["    return discount(total)\n"])
    define = _unit("util.py", 0, 3, [], ["def discount(total):\n", "    return total * 0.9\n"])
    assert defined_names(define) == {"discount"}
    for seed in range(10):
        assert typing_order([call, define], random.Random(seed)) == [define, call]


def test_tests_come_after_code_when_nothing_else_decides():
    code = _unit("src/app.py", 0, 3, ["x = 1\n"], ["x = 2\n"])
    test = _unit("tests/test_app.py", 0, 3, ["assert x == 1\n"], ["assert x == 2\n"])
    for seed in range(10):
        assert typing_order([test, code], random.Random(seed)) == [code, test]
    assert [is_test_path(p) for p in ("tests/a.py", "pkg/test_a.py", "a_test.go", "web/a.spec.ts",
                                      "src/contest.py", "src/testing.py")] == [True] * 4 + [False] * 2


def test_within_a_file_the_nearest_unit_follows():
    units = [_unit("a.py", i, start, ["x\n"], ["y\n"]) for i, start in enumerate([0, 40, 45, 100])]
    for seed in range(10):
        order = typing_order(units, random.Random(seed))
        # Whatever the start, each step goes to the nearest remaining unit.
        for prev, nxt in itertools.pairwise(order):
            rest = [u for u in units if u not in order[:order.index(nxt)]]
            assert abs(nxt.old_start - prev.old_start) == min(abs(u.old_start - prev.old_start) for u in rest)
    # A function renamed at its definition is typed before its call sites.
    define = _unit("b.py", 1, 50, ["def old_name(x):\n"], ["def new_name(x):\n"])
    uses = [_unit("b.py", 0, 5, ["old_name(1)\n"], ["new_name(1)\n"]),
            _unit("b.py", 2, 90, ["old_name(2)\n"], ["new_name(2)\n"])]
    for seed in range(5):
        assert typing_order([uses[0], define, uses[1]], random.Random(seed))[0] is define


def test_pieces_of_a_hunk_keep_their_order():
    old = ["a\n"] * 3
    new = ["a\n", *[f"l{i}\n" for i in range(20)], "a\n", "a\n"]
    edits = file_edits("f.py", old, new, _hunks(old, new), max_lines=4)
    assert len(edits) >= 5 and all(len(e.new) <= 4 for e in edits)
    for seed in range(5):
        order = typing_order(edits, random.Random(seed))
        for hunk in {e.hunk for e in edits}:
            pieces = [e.piece for e in order if e.hunk == hunk]
            assert pieces == sorted(pieces)


# ------------------------------------------------------------------ splits and typing


def test_split_points_are_distinct_and_leave_an_expected_edit():
    rng = random.Random(0)
    ks = split_points(6, 3, rng)
    assert len(set(ks)) == 3 and all(1 <= k <= 5 for k in ks)
    assert sorted(split_points(3, 10, rng)) == [1, 2]
    assert split_points(1, 3, rng) == [0]


def test_expected_group_and_history_events_coalesce_nearby_units():
    units = [_unit("a.py", i, start, ["x\n"], ["y\n"]) for i, start in enumerate([0, 3, 6, 30])]
    other = _unit("b.py", 0, 0, ["x\n"], ["y\n"])
    order = [units[0], units[1], units[2], units[3], other]
    assert expected_group(order, 0) == units[:3]
    assert expected_group(order, 0, max_units=2) == units[:2]
    assert expected_group(order, 2) == [units[2]]
    assert expected_group(order, 3) == [units[3]]
    assert [len(e) for e in history_events(order)] == [3, 1, 1]


def test_partial_candidates_weights_and_kept_rest():
    cands = {c.text: w for c, w in partial_candidates("total = price", "total = price * qty")}
    assert cands["total = price *"] == 5
    assert cands["total = price * q"] == 1
    assert "total = price * qty" not in cands  # the finished line is not half-typed
    args = {c.text: w for c, w in partial_candidates("", "    call(a, b)")}
    assert args["    call("] == 10 and args["    call(a,"] == 10 and args["    call"] == 8
    assert args["    "] == 6  # the editor's auto-indent, once
    assert "  " not in args
    # Typing in the middle of a line keeps the old rest when it still resembles the new rest.
    mid = {(c.typed, c.rest) for c, _ in partial_candidates("if amount <= 0:", "if quantity <= 0:")}
    assert ("if quant", " <= 0:") in mid
    rng = random.Random(3)
    for _ in range(20):
        p = sample_partial("x = f(a)", "x = f(a, b)", rng)
        assert p is not None and "x = f(a, b)".startswith(p.typed)
    assert sample_partial("same", "same", rng) is None


@settings(max_examples=200, deadline=None)
@given(a=st.text("ab\n", max_size=20), b=st.text("ab\n", max_size=20))
def test_changed_span_matches_a_plain_scan(a, b):
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    s = 0
    while s < min(len(a), len(b)) - p and a[-1 - s] == b[-1 - s]:
        s += 1
    assert changed_span(a, b) == (p, len(a) - s)


def test_an_unreadable_commit_is_skipped_with_the_error(tmp_path):
    repo, _ = scripted_repo(tmp_path / "shop")
    missing = "1" * 40
    patch = (f"diff --git a/x.py b/x.py\nindex {'2' * 40}..{missing} 100644\n--- a/x.py\n+++ b/x.py\n"
             "@@ -1 +1 @@\n-a\n+b\n").encode()
    info = repo_info(repo.path)
    with GitObjects(repo.path) as objects:
        result = mine_commit_safely(info, Commit("f" * 40, (), "", "bad", patch), MineConfig(), objects)
    assert result.status == "skipped"
    assert result.reason.startswith("error: GitError:") and missing in result.reason
