"""Exact lines (zed-ep.md 3.2): signed changed-line multisets of two diffs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit import patch as P
from nextedit.metrics import changed_line_bag, exact_lines

E = "--- a/f.py\n+++ b/f.py\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"


def test_identical_patches() -> None:
    r = exact_lines(E, E)
    assert (r.tp, r.fp, r.fn, r.precision, r.recall, r.f1) == (2, 0, 0, 1.0, 1.0, 1.0)
    assert r.signature.startswith("exact_lines:v1|")


def test_sign_matters_and_context_is_ignored() -> None:
    a = "@@ -5,2 +5,2 @@\n other context\n-b\n+C\n"
    r = exact_lines(E, a)
    assert (r.tp, r.fp, r.fn) == (1, 1, 1)
    assert r.precision == r.recall == r.f1 == 0.5


def test_multiset_counts_duplicates() -> None:
    e = "@@ -1,2 +1,4 @@\n x\n+y\n+y\n x\n"
    a = "@@ -1,2 +1,5 @@\n x\n+y\n+y\n+y\n x\n"
    assert (exact_lines(e, a).tp, exact_lines(e, a).fp, exact_lines(e, a).fn) == (2, 1, 0)


def test_empty_sides() -> None:
    assert exact_lines("", "").f1 == 1.0  # both say "no edit"
    r = exact_lines(E, "")
    assert (r.tp, r.fp, r.fn, r.precision, r.recall, r.f1) == (0, 0, 2, 0.0, 0.0, 0.0)
    assert exact_lines(E, None).fn == 2


def test_headers_are_skipped_but_dashed_content_counts() -> None:
    e = "diff --git a/q.sql b/q.sql\nindex 1..2\n--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,1 @@\n--- note\n x\n"
    assert changed_line_bag(e) == {"--- note": 1}
    assert changed_line_bag("@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n") == {"-a": 1, "+b": 1}


lines = st.lists(st.sampled_from(["a\n", "b\n", "--x\n", "++y\n", "\n", " c\n"]), max_size=8)


@settings(max_examples=150, deadline=None)
@given(lines, lines)
def test_bag_matches_patch_module_changed_lines(old: list[str], new: list[str]) -> None:
    patch = P.make("".join(old), "".join(new), path="f.txt")
    assert sorted(changed_line_bag(patch).elements()) == sorted(P.changed_lines(patch))
