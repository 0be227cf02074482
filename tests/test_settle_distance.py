"""Candidate regions (the fast hunk path agrees with nextedit.patch) and the distance metrics."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nextedit import patch as patchlib
from nextedit.settle.distance import (
    RegionApplier,
    distances,
    matrix_distances,
    pair_distances,
    signature,
)
from nextedit.settle.fastapply import apply_at_hints, split_keep

LINES = st.lists(st.sampled_from(["a = 1\n", "b = 2\n", "\n", "def f():\n", "    return a\n", "x\r\n", "-- c\n",
                                  "++ d\n", "z"]), min_size=1, max_size=25)


def _text(lines: list[str]) -> str:
    return "".join(line if line.endswith("\n") or i == len(lines) - 1 else line + "\n"
                   for i, line in enumerate(lines))


@settings(max_examples=300, deadline=None)
@given(lines=LINES, new_lines=LINES, lo=st.integers(0, 30), hi=st.integers(0, 30), a=st.integers(0, 30),
       b=st.integers(0, 30), start_line=st.integers(0, 5), cut=st.integers(0, 3))
# an edit below the region whose context also occurs inside the region's window: it belongs where the whole text has it
@example(lines=["a = 1\n"] * 3 + ["b = 2\n"] + ["a = 1\n"] * 3, new_lines=["a = 1\n"], lo=0, hi=0, a=4, b=4,
         start_line=0, cut=0)
def test_region_applier_agrees_with_patch_to_region(lines, new_lines, lo, hi, a, b, start_line, cut):
    text = _text(lines)
    offsets = [0, *np.cumsum([len(x) for x in split_keep(text)]).tolist()]
    lo, hi = sorted((offsets[min(lo, len(offsets) - 1)], offsets[min(hi, len(offsets) - 1)]))
    hi = max(lo, hi - cut)  # sometimes not line-aligned
    # An edit somewhere in the text (inside, outside or across the region).
    a, b = sorted((offsets[min(a, len(offsets) - 1)], offsets[min(b, len(offsets) - 1)]))
    new_text = text[:a] + "".join(new_lines[:3]) + text[b:]
    patch = patchlib.make(text, new_text, path="f.py", start_line=start_line)
    applier = RegionApplier(text, (lo, hi), start_line=start_line)
    try:
        want = patchlib.to_region(patch, text, (lo, hi), start_line=start_line)[1]
    except patchlib.PatchError:
        want = None
    try:
        got = applier.region(patch)
    except patchlib.PatchError:
        got = None
    assert got == want


def test_fast_path_refuses_what_it_does_not_handle():
    lines = split_keep("a\nb\nc\n")
    ok = "--- a/f\n+++ b/f\n@@ -2,1 +2,1 @@\n-b\n+B\n"
    assert apply_at_hints(ok, lines, 0) == ["a\n", "B\n", "c\n"]
    assert apply_at_hints(ok, lines, 1) is None  # not at its hinted line
    assert apply_at_hints("@@ -1,1 +1,1 @@\n-c\n+C\n", lines, 0) is None  # context elsewhere
    assert apply_at_hints("@@ -3,1 +3,1 @@\n-c\n+C\n\\ No newline at end of file\n", lines, 0) is None
    assert apply_at_hints(ok + "--- a/g\n+++ b/g\n@@ -1 +1 @@\n-x\n+y\n", lines, 0) is None
    assert apply_at_hints("garbage\n", lines, 0) is None and apply_at_hints("", lines, 0) is None


def test_levenshtein_distances_match_the_definition_and_all_kernels_agree():
    settled = "def f(x):\n    return x + 1\n"
    cands = [settled, settled.replace("+ 1", "+ 2"), "class A:\n    pass\n", ""]
    d = distances("", settled, cands)
    assert d[0] == 0.0 and d[1] == pytest.approx(1 / len(settled)) and d[3] == 1.0
    assert 0.5 < d[2] < 1.0
    assert np.allclose(matrix_distances(settled, cands), d)
    assert np.allclose(pair_distances([settled] * 4, cands, workers=2), d)
    assert distances("", settled, []).size == 0


def test_change_normalized_levenshtein_ignores_the_region_size():
    filler = "# unchanged line\n" * 200
    original = filler + "x = compute(a)\n"
    settled = filler + "x = compute(a, b)\n"
    half = filler + "x = compute(a,)\n"
    d = distances(original, settled, [settled, half, original, filler + "y = 2\n"], "levenshtein_change")
    assert d[0] == 0.0 and d[2] == 1.0 and d[3] == 1.0
    assert d[1] == pytest.approx(2 / 3)  # 2 edits apart; the user's change is 3 edits
    assert distances(original, settled, [half], "levenshtein")[0] < 0.001  # plain: tiny in a large region
    assert distances(original, original, [original], "levenshtein_change")[0] == 0.0


def test_kept_rate_and_chrf_distances_and_signatures():
    original = "total = price * qty\n"
    settled = "total = price * qty * (1 + tax)\n"
    good, partial, wrong = settled, "total = price * qty * 1\n", "print(total)\n"
    for metric in ("kept_rate", "delta_chrf"):
        d = distances(original, settled, [good, partial, wrong], metric)
        assert d[0] == pytest.approx(0.0, abs=1e-9) and d[0] < d[1] < d[2] <= 1.0
        assert signature(metric).startswith("settle_distance:v1|")
    with pytest.raises(ValueError, match="unknown distance metric"):
        distances(original, settled, [good], "bleu")
    with pytest.raises(ValueError, match="unknown distance metric"):
        signature("bleu")


@settings(max_examples=300, deadline=None)
@given(lines=LINES, new_lines=LINES, a=st.integers(0, 30), b=st.integers(0, 30), c=st.integers(0, 30),
       start_line=st.integers(0, 5), shift=st.integers(-2, 2), context=st.integers(0, 3))
def test_fast_path_agrees_with_patch_apply_whenever_it_answers(lines, new_lines, a, b, c, start_line, shift,
                                                               context):
    text = _text(lines)
    offsets = [0, *np.cumsum([len(x) for x in split_keep(text)]).tolist()]
    a, b, c = sorted(offsets[min(x, len(offsets) - 1)] for x in (a, b, c))
    # Two edits (often two hunks), sometimes with the hunk headers moved off their lines.
    new_text = text[:a] + "".join(new_lines[:2]) + text[a:b] + "".join(new_lines[2:4]) + text[c:]
    patch = patchlib.make(text, new_text, path="f.py", start_line=start_line, context=context)
    if shift:
        patch = re.sub(r"^@@ -(\d+)", lambda m: f"@@ -{max(0, int(m.group(1)) + shift)}", patch, flags=re.MULTILINE)
    got = apply_at_hints(patch, split_keep(text), start_line)
    if got is not None:
        assert "".join(got) == patchlib.apply(patch, text, start_line=start_line)
