"""Kept rate / recall rate (zed-ep.md 3.4): byte counts, edge cases, trimmed == untrimmed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nextedit.metrics import kept_rate
from nextedit.metrics.kept import DIRTY_GUARD_BYTES

BASE = "def f(x):\n    return x\n"


def test_identical_texts_keep_everything() -> None:
    r = kept_rate(BASE, BASE, BASE)
    assert (r.kept_rate, r.recall_rate) == (1.0, 1.0)
    assert r.signature.startswith("kept_rate:v1|") and "count=utf8_bytes" in r.signature


def test_prediction_equal_to_reference() -> None:
    new = BASE.replace("return x", "return x + offset")
    r = kept_rate(BASE, new, new)
    assert (r.kept_rate, r.recall_rate) == (1.0, 1.0)
    assert r.kept_chars == len(" + offset") and r.discarded_chars == 0


def test_partial_prediction() -> None:
    # Reference adds " + offset"; candidate adds " + offset * 2": the extra " * 2" is discarded.
    ref = BASE.replace("return x", "return x + offset")
    cand = BASE.replace("return x", "return x + offset * 2")
    r = kept_rate(BASE, cand, ref)
    assert r.kept_chars == len(" + offset")
    assert r.candidate_new_chars == len(" + offset * 2")
    assert r.discarded_chars == len(" * 2")
    assert r.kept_rate == len(" + offset") / len(" + offset * 2")
    assert r.recall_rate == 1.0


def test_identifiers_are_whole_units() -> None:
    # Renaming `count` to `counter` keeps nothing: the units differ as a whole.
    r = kept_rate("x = count\n", "x = counter\n", "x = count2\n")
    assert r.kept_chars == 0 and r.correctly_deleted_chars == len("count")
    assert r.kept_rate == len("count") / (len("counter") + len("count"))


def test_deletions_count_when_both_delete() -> None:
    base = "a = 1\nb = 2\nc = 3\n"
    r = kept_rate(base, "a = 1\nc = 3\n", "a = 1\nc = 3\n")
    assert r.correctly_deleted_chars == len("b = 2\n") and r.kept_rate == 1.0


def test_empty_prediction_and_empty_reference() -> None:
    ref = BASE.replace("x\n", "y\n")
    r = kept_rate(BASE, BASE, ref)
    assert (r.kept_rate, r.recall_rate) == (0.0, 0.0)
    r = kept_rate(BASE, ref, BASE)
    assert (r.kept_rate, r.recall_rate) == (0.0, 0.0)


def test_counts_are_utf8_bytes() -> None:
    r = kept_rate("x = 1\n", "x = 1 # héllo\n", "x = 1 # héllo\n")
    assert r.kept_chars == len(" # héllo".encode()) == len(" # héllo") + 1


def test_dirty_final_guard() -> None:
    big = BASE + "z = 0\n" * (DIRTY_GUARD_BYTES // 6 + 2)
    r = kept_rate(BASE, BASE.replace("x\n", "y\n"), big)
    assert (r.kept_rate, r.recall_rate) == (0.0, 0.0) and r.candidate_new_chars == 0


texts = st.lists(st.sampled_from(["a", "b", "_", " ", "\n", "\r", "(", ")", "->", "é"]), max_size=16).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts, texts, texts, st.text(alphabet="xy\n ", max_size=12), st.text(alphabet="xy\n ", max_size=12))
def test_trimming_shared_lines_does_not_change_results(b: str, c: str, r: str, pre: str, post: str) -> None:
    b, c, r = pre + b + post, pre + c + post, pre + r + post
    assert kept_rate(b, c, r) == kept_rate(b, c, r, windowed=False)
