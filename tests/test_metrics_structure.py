"""Braces, wrong editable region, isolated whitespace, token changes, cursor, syntax, similarity."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit import patch as P
from nextedit.metrics import (
    braces_disbalance,
    braces_disbalance_delta,
    cursor_distance,
    isolated_whitespace_changes,
    levenshtein_similarity,
    no_edit_summary,
    region_after,
    syntax_errors,
    token_changes,
    wrong_editable_region,
)
from nextedit.metrics.syntax import _tree, syntax_errors_around, top_level_window

TEXT = "a\nb\nc\nd\ne\nf\n"


def test_braces_disbalance() -> None:
    assert braces_disbalance("f(x[1]) {") == 1
    assert braces_disbalance("}}((") == 4
    assert braces_disbalance_delta("f(x", "f(x)") == 0  # a fix never counts negative
    assert braces_disbalance_delta("f(x)", "f(x") == 1


def test_wrong_editable_region() -> None:
    assert wrong_editable_region(None) is None
    assert wrong_editable_region("") is False
    assert wrong_editable_region(P.make(TEXT, "d\ne\nf\n")) is True  # first hunk opens with 3 deletions
    assert wrong_editable_region(P.make(TEXT, "c\nd\ne\nf\n")) is False  # only 2
    assert wrong_editable_region(P.make(TEXT, TEXT.replace("d\ne\nf\n", ""))) is False  # context first


def test_isolated_whitespace_changes() -> None:
    blank_added = P.make(TEXT, TEXT.replace("b\n", "b\n\n"))  # new blank line at row 2
    assert isolated_whitespace_changes(blank_added) is True
    assert isolated_whitespace_changes(blank_added, cursor_row=2) is False  # the cursor lands there
    assert isolated_whitespace_changes(blank_added, cursor_row=3) is True
    with_code = P.make(TEXT, TEXT.replace("b\n", "b\n\nx = 1\n"))
    assert isolated_whitespace_changes(with_code) is False
    blank_removed = P.make("a\n\nb\nc\nd\n", "a\nb\nc\nd\n")
    assert isolated_whitespace_changes(blank_removed, cursor_row=1) is True  # only additions are exempt
    assert isolated_whitespace_changes("") is False
    # Cursor rows are file rows: with start_line 10 the blank line is file row 12.
    shifted = P.make(TEXT, TEXT.replace("b\n", "b\n\n"), start_line=10)
    assert isolated_whitespace_changes(shifted, cursor_row=12) is False


def test_token_changes() -> None:
    r = token_changes(P.make("x = foo(a)\n", "x = fooBar(a, b)\n"))
    assert (r.inserted, r.deleted, r.total) == (4, 0, 4)  # Bar , ␠ b
    r = token_changes(P.make("a\nold_name = 1\nz\n", "a\nz\n"))
    assert (r.inserted, r.deleted) == (0, 7)  # old _ name ␠ = ␠ 1
    assert token_changes(None).total == 0 and token_changes("").total == 0


def test_cursor_distance() -> None:
    assert (cursor_distance(10, 14).distance, cursor_distance(10, 14).exact_match) == (4, False)
    assert cursor_distance(7, 7).exact_match is True
    assert (cursor_distance(None, 3).distance, cursor_distance(None, 3).exact_match) == (None, False)
    assert (cursor_distance(None, None).distance, cursor_distance(None, None).exact_match) == (None, None)


def test_syntax_errors_counts_error_and_missing_nodes() -> None:
    assert syntax_errors("def f(x):\n    return x\n", "python") == 0
    assert syntax_errors("def f(x:\n    return x\n", "python") >= 1
    assert syntax_errors("fn main() { let x = 1; }\n", "rust") == 0
    assert syntax_errors("fn main() { let x = ; }\n", "rust") >= 1
    assert syntax_errors("anything", "cobol") is None
    # Incremental reparse from a base text gives the same count as a fresh parse.
    base = "def f(x):\n    return x\n"
    broken = "def f(x):\n    return (x\n"
    assert syntax_errors(broken, "python", base=base) == syntax_errors(broken, "python")


def test_syntax_window_covers_the_changed_top_level_blocks() -> None:
    text = "import os\n\ndef f(x):\n    y = 1\n    return y\n\ndef g():\n    pass\n"
    start, tail = top_level_window(text, text.replace("y = 1", "y = (1"))
    assert text[start:len(text) - tail] == "def f(x):\n    y = 1\n    return y\n\n"
    before, (after, same) = syntax_errors_around(text, [text.replace("y = 1", "y = (1"), text], "python")
    assert (before, same) == (0, 0) and after >= 1


def test_levenshtein_similarity_and_region() -> None:
    assert levenshtein_similarity("abcd", "abcd") == 1.0
    assert levenshtein_similarity("abcd", "abce") == 0.75
    assert levenshtein_similarity("", "") == 1.0
    original = "head\nREGION\ntail\n"
    editable = (5, 12)
    assert region_after(original, editable, "head\nNEW REGION\ntail\n") == "NEW REGION\n"
    assert region_after(original, editable, "HEAD\nREGION\ntail\n") == "HEAD\nREGION\ntail\n"


def test_no_edit_summary() -> None:
    rows = [
        {"no_edit_expected": True, "no_edit_predicted": True},    # silent, right
        {"no_edit_expected": True, "no_edit_predicted": False},   # spoke, should not have
        {"no_edit_expected": False, "no_edit_predicted": False},  # spoke, right
        {"no_edit_expected": False, "no_edit_predicted": False},  # spoke, right
        {"no_edit_expected": False, "no_edit_predicted": True},   # silent, should have spoken
        {"no_edit_expected": False, "no_edit_predicted": None},   # errored: not counted
    ]
    s = no_edit_summary(rows)
    assert (s.silent_right, s.silent_wrong, s.speaking_right, s.speaking_wrong) == (1, 1, 2, 1)
    assert (s.silent_precision, s.silent_recall) == (0.5, 0.5)
    assert (s.speaking_precision, s.speaking_recall) == (2 / 3, 2 / 3)
    assert no_edit_summary([]).silent_precision is None


_py_line = st.sampled_from([
    "def f(x):", "    return x", "    y = (x", "    y = x)", "class A:", "    pass", "", "  # note é",
    "    if x:", "        z = [1, 2", "        z = [1, 2]", "x = {'a': 1}", "    for i in y:",
])


@settings(max_examples=150, deadline=None)
@given(st.lists(_py_line, min_size=0, max_size=30), st.data())
def test_incremental_reparse_over_several_edits_counts_like_a_fresh_parse(lines: list[str], data: st.DataObject) -> None:
    base = "\n".join(lines) + data.draw(st.sampled_from(["", "\n"]))
    edited = list(lines)
    for _ in range(data.draw(st.integers(1, 6))):  # edits scattered over the text
        at = data.draw(st.integers(0, len(edited)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace", "append"]))
        if kind == "insert" or at == len(edited):
            edited.insert(at, data.draw(_py_line))
        elif kind == "delete":
            del edited[at]
        elif kind == "append":
            edited[at] += data.draw(st.sampled_from(["(", ")", " + 1", ":"]))
        else:
            edited[at] = data.draw(_py_line)
    text = "\n".join(edited) + data.draw(st.sampled_from(["", "\n"]))
    syntax_errors.cache_clear()
    assert syntax_errors(text, "python", base=base) == syntax_errors(text, "python")
    assert str(_tree(text, "python", base).root_node) == str(_tree(text, "python", None).root_node)
